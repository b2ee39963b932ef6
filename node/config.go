package node

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/bootstrap"
)

// PollMode says how the driver spends the time between Steps.
type PollMode uint8

const (
	// PollSpin steps in a tight loop on a locked OS thread: the lowest
	// latency, one core per node. It needs GOMAXPROCS >= spinning nodes + 1
	// (Start refuses otherwise).
	PollSpin PollMode = iota
	// PollSpinYield yields to the Go scheduler after every Step: for hosts
	// with fewer cores than nodes; adds the scheduler's turn-around.
	PollSpinYield
	// PollIdleSleep spins (yielding) while proposals are in flight and
	// otherwise sleeps until the next wake-up the replica asks for, at most
	// Config.IdleSleepMax: for emulated or shared hosts.
	PollIdleSleep
)

func (m PollMode) String() string {
	switch m {
	case PollSpin:
		return "spin"
	case PollSpinYield:
		return "spin-yield"
	case PollIdleSleep:
		return "idle-sleep"
	}
	return fmt.Sprintf("PollMode(%d)", uint8(m))
}

// Peer is one member of the cluster.
type Peer struct {
	ID rdma.NodeID
	// Address is host:port of the member's RDMA bootstrap listener (TCP),
	// where queue-pair endpoints are exchanged.
	Address string
}

// Config describes one node. Start from DefaultConfig.
type Config struct {
	// ID is this node; it must be listed in Peers.
	ID rdma.NodeID
	// ClusterID must be the same on every member and not 0: a peer of
	// another cluster is refused at the bootstrap.
	ClusterID uint64
	// Peers lists every member, this node included.
	Peers []Peer
	// Device selects the RDMA port and GID (by netdev or device name).
	Device rdma.DeviceSpec

	// StateMachine is the replicated application. When it also implements
	// consensus.ResultApplier, Propose returns each command's result.
	StateMachine consensus.StateMachine
	// Consensus tunes the replica. Members is filled from Peers when empty;
	// its callbacks still run, on the driver, before the node's own events.
	Consensus consensus.Config

	Poll PollMode
	// IdleSleepMax bounds one sleep of a PollIdleSleep driver; it must leave
	// the heartbeat counter moving several times per peer read. 0 means a
	// quarter of Consensus.PullScore.ReadIntervalNs.
	IdleSleepMax time.Duration

	// HandshakeTimeout bounds one bootstrap handshake; 0 means
	// bootstrap.DefaultHandshakeTimeout. Once a majority is connected the node
	// waits up to twice this for the rest before it starts replicating.
	HandshakeTimeout time.Duration
	// Credentials run the bootstrap inside mutual TLS 1.3, each peer's id
	// bound to its certificate. Without them Insecure must be set.
	Credentials *clustertls.Credentials
	Insecure    bool

	// Rejoining says this node restarts without its log: it neither leads
	// nor counts in a recovery quorum until a leader has caught it up.
	Rejoining bool

	// Logger receives the node's life events (nil: discarded).
	Logger *slog.Logger
	// OnEvent receives typed events (LeaderChange, FirstCommit, Fenced,
	// FailSlow, Corruption) in order, on a goroutine of the node's: it may
	// block briefly, and it may call any method of the node.
	OnEvent func(Event)

	// Fabric, when set, replaces device discovery, the verbs fabric and the
	// bootstrap: an already connected fabric such as rdma/inproc's (see
	// InprocFabrics), for tests. The caller owns it and closes it after
	// Close. Device, Address, Credentials and Insecure are then unused.
	Fabric rdma.Fabric
}

// DefaultConfig returns a config to fill in: ID, ClusterID, Peers, Device
// and StateMachine.
func DefaultConfig() Config {
	return Config{
		Device:    rdma.DeviceSpec{GIDIndex: rdma.AutoGIDIndex},
		Consensus: consensus.DefaultConfig(),
		Poll:      PollSpinYield,
	}
}

// ErrConfig marks every configuration error, for errors.Is.
var ErrConfig = errors.New("node: invalid config")

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}

// validate checks c and fills what has a default. It names the field.
func (c *Config) validate() error {
	if c.ID == 0 {
		return fieldErr("ID", "must be set (ids start at 1)")
	}
	if c.StateMachine == nil {
		return fieldErr("StateMachine", "must be set")
	}
	if c.Poll > PollIdleSleep {
		return fieldErr("Poll", "%v is not a poll mode", c.Poll)
	}
	if c.IdleSleepMax < 0 {
		return fieldErr("IdleSleepMax", "must not be negative, got %v", c.IdleSleepMax)
	}
	if c.HandshakeTimeout < 0 {
		return fieldErr("HandshakeTimeout", "must not be negative, got %v", c.HandshakeTimeout)
	}
	members := make([]rdma.NodeID, 0, len(c.Peers))
	for i, p := range c.Peers {
		if p.ID == 0 {
			return fieldErr(fmt.Sprintf("Peers[%d].ID", i), "must be set (ids start at 1)")
		}
		if slices.Contains(members, p.ID) {
			return fieldErr(fmt.Sprintf("Peers[%d].ID", i), "node %d is listed twice", p.ID)
		}
		if c.Fabric == nil && p.Address == "" {
			return fieldErr(fmt.Sprintf("Peers[%d].Address", i), "must be set (host:port of its bootstrap listener)")
		}
		members = append(members, p.ID)
	}
	if len(c.Peers) > 0 && !slices.Contains(members, c.ID) {
		return fieldErr("Peers", "does not list this node (%d)", c.ID)
	}
	cc := &c.Consensus
	if len(cc.Members) == 0 {
		cc.Members = members
	} else if len(c.Peers) > 0 && !sameSet(cc.Members, members) {
		return fieldErr("Consensus.Members", "%v differs from the ids in Peers %v", cc.Members, members)
	}
	if len(cc.Members) == 0 {
		return fieldErr("Consensus.Members", "must list every member (or set Peers)")
	}
	if !slices.Contains(cc.Members, c.ID) {
		return fieldErr("Consensus.Members", "does not list this node (%d)", c.ID)
	}
	if err := cc.Validate(); err != nil {
		return fmt.Errorf("%w: Consensus: %w", ErrConfig, err)
	}
	if c.Fabric != nil {
		if c.Fabric.Self() != c.ID {
			return fieldErr("Fabric", "belongs to node %d, not %d", c.Fabric.Self(), c.ID)
		}
		return nil
	}
	if len(c.Peers) == 0 {
		return fieldErr("Peers", "must list every member with its bootstrap address")
	}
	if c.ClusterID == 0 {
		return fieldErr("ClusterID", "must be set and not 0")
	}
	if c.Credentials == nil && !c.Insecure {
		return fieldErr("Credentials", "required (or set Insecure to run the bootstrap in plain TCP)")
	}
	if c.Credentials != nil && c.Insecure {
		return fieldErr("Insecure", "set together with Credentials")
	}
	if c.Device.Interface == "" && c.Device.Device == "" {
		return fieldErr("Device", "name an Interface or a Device")
	}
	return nil
}

func sameSet(a, b []rdma.NodeID) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// self is this node's Peers entry.
func (c *Config) self() Peer {
	for _, p := range c.Peers {
		if p.ID == c.ID {
			return p
		}
	}
	return Peer{ID: c.ID}
}

// peerIDs are the other members.
func (c *Config) peerIDs() []rdma.NodeID {
	var out []rdma.NodeID
	for _, id := range c.Consensus.Members {
		if id != c.ID {
			out = append(out, id)
		}
	}
	return out
}

func (c *Config) idleSleepMax() time.Duration {
	if c.IdleSleepMax > 0 {
		return c.IdleSleepMax
	}
	return max(time.Duration(c.Consensus.PullScore.ReadIntervalNs)/4, 10*time.Microsecond)
}

func (c *Config) handshakeTimeout() time.Duration {
	if c.HandshakeTimeout > 0 {
		return c.HandshakeTimeout
	}
	return bootstrap.DefaultHandshakeTimeout
}
