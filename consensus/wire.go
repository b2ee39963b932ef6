package consensus

import (
	"fmt"
	"slices"

	"github.com/rdmaconsensus/mu/permissions"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
)

// sortedMembers returns the members in id order: every package indexes
// members by their position in the sorted list.
func sortedMembers(m []rdma.NodeID) []rdma.NodeID {
	s := slices.Clone(m)
	slices.Sort(s)
	return s
}

// New builds a replica over fabric f with pull-score failure detection and
// the permission manager, both living in f's region at the offsets of
// NewLayout(cfg). The region must be at least cfg.RegionBytes().
func New(f rdma.Fabric, sm StateMachine, cfg Config) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if f == nil {
		return nil, fmt.Errorf("%w: fabric is nil", ErrInvalidConfig)
	}
	members := sortedMembers(cfg.Members)
	lay := NewLayout(cfg)
	if uint64(len(f.Region().Bytes())) < lay.TotalBytes {
		return nil, fmt.Errorf("%w: region is %d bytes, layout needs %d (Config.RegionBytes)",
			ErrInvalidConfig, len(f.Region().Bytes()), lay.TotalBytes)
	}
	self := f.Self()
	peers := make([]rdma.NodeID, 0, len(members)-1)
	for _, id := range members {
		if id != self {
			peers = append(peers, id)
		}
	}
	det, err := pullscore.NewDetector(f, self, peers, lay.HeartbeatOffset, lay.DetectorScratch, cfg.PullScore)
	if err != nil {
		return nil, fmt.Errorf("consensus: detector: %w", err)
	}
	pm, err := permissions.New(f, self, peers, lay.PermissionOffset, cfg.Permissions)
	if err != nil {
		return nil, fmt.Errorf("consensus: permissions: %w", err)
	}
	r, err := NewWithSeams(f, sm, &detectorAdapter{det}, pm, cfg)
	if err != nil {
		return nil, err
	}
	r.pdet, r.pperm = det, pm
	return r, nil
}

// Detector returns the pull-score detector of a replica built by New.
func (r *Replica) Detector() *pullscore.Detector { return r.pdet }

// PermissionManager returns the permission manager of a replica built by New.
func (r *Replica) PermissionManager() *permissions.Manager { return r.pperm }

type detectorAdapter struct{ d *pullscore.Detector }

func (a *detectorAdapter) Step(now int64) int64           { return a.d.Step(now) }
func (a *detectorAdapter) OnCompletion(c rdma.Completion) { a.d.OnCompletion(c) }
func (a *detectorAdapter) Leader() (rdma.NodeID, bool)    { return a.d.Leader() }
func (a *detectorAdapter) Alive(id rdma.NodeID) bool      { return a.d.Alive(id) }
func (a *detectorAdapter) FailBoundNs() int64             { return a.d.FailBoundNs() }
func (a *detectorAdapter) SetVoters(ids uint64)           { a.d.SetVoters(ids) }
func (a *detectorAdapter) SetStandby(on bool)             { a.d.SetStandby(on) }
func (a *detectorAdapter) StaleNs(id rdma.NodeID, now int64) int64 {
	return a.d.StaleNs(id, now)
}
func (a *detectorAdapter) PeerHealth(id rdma.NodeID) Health {
	switch a.d.PeerHealth(id) {
	case pullscore.Fenced:
		return HealthFenced
	case pullscore.Degraded:
		return HealthDegraded
	}
	return HealthHealthy
}

func (a *detectorAdapter) SetHealth(h Health) {
	switch h {
	case HealthFenced:
		a.d.SetHealth(pullscore.Fenced)
	case HealthDegraded:
		a.d.SetHealth(pullscore.Degraded)
	default:
		a.d.SetHealth(pullscore.Healthy)
	}
}
