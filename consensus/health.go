package consensus

import (
	"sync/atomic"
	"time"

	"github.com/rdmaconsensus/mu/hwmon/failslow"
	"github.com/rdmaconsensus/mu/rdma"
)

// FollowerLatency is the leader's layer-2 view of one follower: the
// completion latency of its fast-path slot writes over the tracker's
// window, against its own baseline.
type FollowerLatency struct {
	Peer          rdma.NodeID
	Samples       int64 // writes timed in the current window
	P99Ns         int64
	BaselineP99Ns int64 // 0 while the baseline is being learnt
	SlowdownRatio float64
	Learning      bool
	// Level is Warn past FailSlow.WarnRatio times the baseline, Critical
	// past CriticalRatio (with hysteresis); FailSlow is Level >= Warn.
	Level    failslow.Severity
	FailSlow bool
}

// tracker returns the tracker in t, making it on first use (Validate
// checked the configuration).
func (r *Replica) tracker(t *atomic.Pointer[failslow.Tracker]) *failslow.Tracker {
	if f := t.Load(); f != nil {
		return f
	}
	f, err := failslow.New(r.cfg.failSlowConfig())
	if err != nil {
		panic("consensus: FailSlow config passed Validate but not NewFailSlow: " + err.Error())
	}
	t.Store(f)
	return f
}

// status reads a tracker at Step's latest clock; nil before its first use.
func (r *Replica) status(t *atomic.Pointer[failslow.Tracker]) []failslow.PeerStatus {
	if f := t.Load(); f != nil {
		return f.Status(time.Unix(0, r.nowA.Load()))
	}
	return nil
}

// observeWrite records one fast-path write's post-to-completion latency.
func (r *Replica) observeWrite(p *peer, latencyNs int64) {
	r.tracker(&r.lat).Observe(int(p.id), latencyNs, time.Unix(0, r.now))
	if r.cfg.OnWriteLatency != nil {
		r.cfg.OnWriteLatency(p.id, latencyNs)
	}
}

func (r *Replica) observeProbe(latencyNs int64) {
	r.tracker(&r.probeLat).Observe(int(r.self), latencyNs, time.Unix(0, r.now))
	if r.cfg.OnProbeCommit != nil {
		r.cfg.OnProbeCommit(latencyNs)
	}
}

// probeStep writes an empty entry when the leader has written nothing for
// ProbeIntervalNs and nothing is queued or in flight, one probe at a time.
// Its commit latency is the arbiter's probe-latency row, and its writes
// keep every follower's write latency measured on an idle cluster.
func (r *Replica) probeStep(now int64) (wake int64) {
	if r.cfg.ProbeIntervalNs == 0 || r.probeIndex != 0 {
		return 0
	}
	if due := r.lastSlotAt + r.cfg.ProbeIntervalNs; now < due {
		return due
	}
	if r.next-1 != r.commit {
		return 0 // not idle: the commit will step us again
	}
	r.ring.mu.Lock()
	queued := r.ring.qLen
	r.ring.mu.Unlock()
	if queued > 0 || !r.reclaimable(r.next) {
		return 0
	}
	r.probeIndex, r.probeAt = r.next, now
	r.stats.Probes++
	r.writeSlot(r.next, 0)
	return 0
}

// FollowerLatency returns the layer-2 state of every follower, in member
// order. Followers never written to as leader have no samples. Safe from
// any goroutine; it allocates (call it at monitoring cadence).
func (r *Replica) FollowerLatency() []FollowerLatency {
	st := r.status(&r.lat)
	out := make([]FollowerLatency, 0, len(r.peers))
	for i := range r.peers {
		fl := FollowerLatency{Peer: r.peers[i].id, Learning: true}
		for _, s := range st {
			if s.Peer == int(fl.Peer) {
				fl.Samples, fl.P99Ns, fl.BaselineP99Ns = s.Samples, s.P99Ns, s.BaselineP99Ns
				fl.SlowdownRatio, fl.Learning, fl.Level = s.SlowdownRatio, s.Learning, s.Level
				fl.FailSlow = s.Level >= failslow.Warn
			}
		}
		out = append(out, fl)
	}
	return out
}

// ProbeLatencyP99Ns is the p99 commit latency of this replica's probes
// over the tracker's window, 0 without samples: the value of the
// arbiter's probe-latency row. Safe from any goroutine.
func (r *Replica) ProbeLatencyP99Ns() int64 {
	p99, _ := r.probeP99()
	return p99
}

func (r *Replica) probeP99() (p99Ns, samples int64) {
	for _, s := range r.status(&r.probeLat) {
		return s.P99Ns, s.Samples
	}
	return 0, 0
}

// ProbeSummary is what the hardware monitor's arbiter reads for layer 2
// (pass it with hwmon.WithProbeSummary): the probe commit p99 for the
// probe-latency row and each follower's fail-slow state, all measured on
// the fabric's clock. Safe from any goroutine.
func (r *Replica) ProbeSummary() failslow.ProbeSummary {
	var s failslow.ProbeSummary
	s.P99Ns, s.Samples = r.probeP99()
	s.Peers = r.status(&r.lat)
	return s
}
