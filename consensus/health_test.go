package consensus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/hwmon"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// load is a steady client load: closed-loop clients that each submit a put
// to whoever leads, wait for the answer, pause briefly and go again. It
// records every acknowledged put with its call and return times (virtual).
type load struct {
	c       *cluster
	rng     *rand.Rand
	nextOp  uint64
	pending map[uint64]*loadOp
	acked   []*loadOp
	stopped bool
	thinkNs int64
}

type loadOp struct {
	op, value  uint64
	node       rdma.NodeID
	index      Index
	call, ret  int64
	acked      bool
	unanswered bool
}

func startLoad(c *cluster, clients int, thinkNs int64) *load {
	l := &load{c: c, rng: c.w.Rand(91), pending: map[uint64]*loadOp{}, thinkNs: thinkNs}
	c.onReply = l.onReply
	for i := 0; i < clients; i++ {
		l.issue()
	}
	return l
}

func (l *load) issue() {
	if l.stopped {
		return
	}
	c := l.c
	ldr, ok := c.leader()
	if !ok {
		c.w.Schedule(c.w.Now()+10_000, l.issue)
		return
	}
	l.nextOp++
	op := &loadOp{op: l.nextOp, value: l.nextOp, node: ldr, call: c.w.Now()}
	var buf [kvCmdBytes]byte
	if err := c.reps[ldr].Submit(encodeKV(buf[:], true, uint8(op.op%5), op.op, op.value), op.op); err != nil {
		c.w.Schedule(c.w.Now()+10_000, l.issue) // not written anywhere
		return
	}
	l.pending[op.op] = op
}

func (l *load) onReply(node rdma.NodeID, token uint64, index Index, err error) {
	op := l.pending[token]
	if op == nil {
		return
	}
	delete(l.pending, token)
	op.ret = l.c.w.Now()
	if err == nil {
		op.acked, op.index = true, index
		l.acked = append(l.acked, op)
	} else if !isNotLeader(err) {
		op.unanswered = true // outcome unknown (leadership lost)
	}
	l.c.w.Schedule(op.ret+l.thinkNs/2+l.rng.Int64N(l.thinkNs), l.issue)
}

// latenciesNs returns Submit-to-commit latency of the puts acknowledged by
// node that were called in [from, to).
func (l *load) latenciesNs(node rdma.NodeID, from, to int64) []int64 {
	var out []int64
	for _, op := range l.acked {
		if op.node == node && op.call >= from && op.call < to {
			out = append(out, op.ret-op.call)
		}
	}
	slices.Sort(out)
	return out
}

func quantileNs(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// stopAndCheck stops the load, waits for the survivors to converge and
// checks that no acknowledged put is lost: each is applied on every
// survivor, whose logs and states are identical.
func (l *load) stopAndCheck(t *testing.T, survivors []rdma.NodeID) {
	t.Helper()
	c := l.c
	l.stopped = true
	c.w.RunUntil(func() bool { return len(l.pending) == 0 }, c.w.Now()+10_000_000)
	ldr := survivors[0]
	if !c.w.RunUntil(func() bool {
		for _, id := range survivors {
			if c.reps[id].AppliedIndex() != c.reps[ldr].AppliedIndex() {
				return false
			}
		}
		return true
	}, c.w.Now()+20_000_000) {
		for _, id := range survivors {
			t.Logf("node %d applied %d", id, c.reps[id].AppliedIndex())
		}
		t.Fatalf("survivors did not converge within 20 ms")
	}
	c.checkSafety()
	for _, op := range l.acked {
		for _, id := range survivors {
			if v, ok := c.sms[id].outputs[op.op]; !ok || v != op.value {
				t.Fatalf("acknowledged put %d (index %d, by node %d) not applied on survivor %d", op.op, op.index, op.node, id)
			}
		}
	}
	for _, id := range survivors[1:] {
		if fmt.Sprint(c.sms[id].data) != fmt.Sprint(c.sms[ldr].data) {
			t.Fatalf("node %d state %v differs from node %d state %v", id, c.sms[id].data, ldr, c.sms[ldr].data)
		}
	}
}

// edacSnapshot is what the EDAC collector reads at virtual time now.
func edacSnapshot(now int64, ce, ue uint64) hwmon.Snapshot {
	return hwmon.Snapshot{
		At:      time.Unix(0, now),
		Signals: []hwmon.SignalStatus{{Name: "edac", Source: "fixture", Available: true}},
		EDAC:    []hwmon.EDACController{{Name: "mc0", CECount: ce, UECount: ue}},
	}
}

// handoverBoundNs is how soon after a hardware verdict reaches the leader
// a healthy replica leads, derived from the configuration:
//   - the verdict takes effect at the leader's next Step: <= MaxIdleNs;
//   - peers read the new health word at their next sample: one
//     ReadIntervalNs to the sample plus the read (~22 µs), so two
//     intervals;
//   - the permission switch: one request round, within
//     Permissions.RequestTimeoutNs when no grant is lost (the grantor's
//     access change costs 80 µs of it);
//   - one queue-pair reset (resetNs) at a replica whose connection to the
//     old leader errored: the fenced leader's writes still in flight when
//     that replica revoked its access were refused, which on rxe moves
//     both ends to ERROR (about 1 seed in 20 here: the new leader's grant
//     then takes ~620 µs);
//   - prepare and recovery: a header read, a min_proposal write and a
//     window read from a majority (~60 µs, tails included: 200 µs).
func handoverBoundNs(cfg Config, resetNs int64) int64 {
	return cfg.MaxIdleNs + 2*cfg.PullScore.ReadIntervalNs + cfg.Permissions.RequestTimeoutNs + resetNs + 200_000
}

// TestUncorrectableErrorOnLeaderMovesLeadership10Seeds: under a steady
// load, the leader's EDAC reports an uncorrectable memory error; a real
// arbiter turns the snapshot into Failed (memory UE row), Verdict.Apply
// fences the leader. A healthy replica must lead within handoverBoundNs
// (about 0.7 ms with the test configuration), the fenced node refuses
// proposals and no longer leads, and every acknowledged put is applied on
// both survivors, whose logs and states are identical.
func TestUncorrectableErrorOnLeaderMovesLeadership10Seeds(t *testing.T) {
	var moves []int64
	sim.Seeds(t, 10, func(t *testing.T, seed uint64) {
		c := newCluster(t, seed, 3, nil)
		bound := handoverBoundNs(c.cfg, c.w.Config().ResetNs)
		old := waitLeader(t, c, 20_000_000)
		ld := startLoad(c, 3, 20_000)
		arb, err := hwmon.NewArbiter(hwmon.DefaultThresholds())
		if err != nil {
			t.Fatal(err)
		}
		c.w.RunFor(2_000_000)
		if rep := arb.Evaluate(edacSnapshot(c.w.Now(), 0, 0)); rep.Verdict != hwmon.Healthy {
			t.Fatalf("clean EDAC judged %v: %v", rep.Verdict, rep.Reasons)
		}
		c.w.RunFor(2_000_000)
		before := len(ld.acked)
		rep := arb.Evaluate(edacSnapshot(c.w.Now(), 0, 1))
		if rep.Verdict != hwmon.Failed || len(rep.Reasons) == 0 || rep.Reasons[0].Row != hwmon.RowMemoryUE {
			t.Fatalf("EDAC UE judged %v: %v", rep.Verdict, rep.Reasons)
		}
		at := c.w.Now()
		rep.Verdict.Apply(c.reps[old])
		if err := c.reps[old].Submit([]byte("x"), 0); !errors.Is(err, ErrFenced) {
			t.Fatalf("fenced leader accepted a proposal at once: %v", err)
		}
		var nl rdma.NodeID
		if !c.w.RunUntil(func() bool { var ok bool; nl, ok = c.leader(); return ok && nl != old }, at+20_000_000) {
			t.Fatalf("no healthy leader 20 ms after the UE verdict; %v", c.leaderLog)
		}
		took := c.w.Now() - at
		moves = append(moves, took)
		t.Logf("UE on leader %d: node %d leads after %d us (bound %d us); %d puts acknowledged before",
			old, nl, took/1000, bound/1000, before)
		if took > bound {
			t.Errorf("leadership moved after %d us, bound %d us", took/1000, bound/1000)
		}
		c.w.RunFor(5_000_000)
		r := c.reps[old]
		if !r.Fenced() || r.IsLeader() {
			t.Fatalf("old leader fenced=%v leader=%v", r.Fenced(), r.IsLeader())
		}
		if h := c.reps[nl].Detector().PeerHealth(old); h.String() != "fenced" {
			t.Fatalf("new leader sees the old one as %v, want fenced", h)
		}
		if err := r.Submit([]byte("x"), 0); !errors.Is(err, ErrFenced) {
			t.Fatalf("fenced node accepted a proposal: %v", err)
		}
		after := 0
		for _, op := range ld.acked[before:] {
			if op.node == nl {
				after++
			}
		}
		if after == 0 {
			t.Fatalf("the new leader %d acknowledged nothing in 5 ms", nl)
		}
		var survivors []rdma.NodeID
		survivors = append(survivors, nl)
		for _, id := range c.ids {
			if id != old && id != nl {
				survivors = append(survivors, id)
			}
		}
		ld.stopAndCheck(t, survivors)
		if l, _ := c.leader(); l != nl {
			t.Fatalf("leadership moved again, to %d", l)
		}
	})
	if len(moves) > 0 {
		slices.Sort(moves)
		t.Logf("UE verdict to healthy leader over %d seeds: p50 %d us, max %d us", len(moves), moves[len(moves)/2]/1000, moves[len(moves)-1]/1000)
	}
}

// TestCriticalCEVerdictDegradesLeader5Seeds: a corrected-error storm on
// the leader (1000 CEs within the arbiter's day window: critical above
// 100/day) is judged Degraded; Verdict.Apply hands leadership to a healthy
// replica within handoverBoundNs (the degraded leader steps down once its
// detector names the healthy peer, so no write of it is in flight to be
// refused), while the degraded node keeps replicating (it applies what the
// new leader commits) and is not fenced.
func TestCriticalCEVerdictDegradesLeader5Seeds(t *testing.T) {
	sim.Seeds(t, 5, func(t *testing.T, seed uint64) {
		c := newCluster(t, seed, 3, nil)
		old := waitLeader(t, c, 20_000_000)
		ld := startLoad(c, 2, 20_000)
		arb, err := hwmon.NewArbiter(hwmon.DefaultThresholds())
		if err != nil {
			t.Fatal(err)
		}
		c.w.RunFor(1_000_000)
		arb.Evaluate(edacSnapshot(c.w.Now(), 0, 0))
		c.w.RunFor(1_000_000)
		rep := arb.Evaluate(edacSnapshot(c.w.Now(), 1000, 0))
		if rep.Verdict != hwmon.Degraded || rep.Reasons[0].Row != hwmon.RowMemoryCE {
			t.Fatalf("CE storm judged %v: %v", rep.Verdict, rep.Reasons)
		}
		at := c.w.Now()
		rep.Verdict.Apply(c.reps[old])
		var nl rdma.NodeID
		if !c.w.RunUntil(func() bool { var ok bool; nl, ok = c.leader(); return ok && nl != old }, at+20_000_000) {
			t.Fatalf("degraded leader %d still leads 20 ms after the verdict; %v", old, c.leaderLog)
		}
		took, bound := c.w.Now()-at, handoverBoundNs(c.cfg, c.w.Config().ResetNs)
		t.Logf("CE storm on leader %d: node %d leads after %d us (bound %d us)", old, nl, took/1000, bound/1000)
		if took > bound {
			t.Errorf("leadership moved after %d us, bound %d us", took/1000, bound/1000)
		}
		c.w.RunFor(3_000_000)
		ld.stopAndCheck(t, c.ids) // the degraded node replicates too
		if c.reps[old].Fenced() {
			t.Fatal("a Degraded verdict fenced the node")
		}
		if l, _ := c.leader(); l != nl {
			t.Fatalf("leadership moved again, to %d", l)
		}
	})
}

// layer2Config shortens the fail-slow window so a test sees a slowdown
// flagged and cleared in tens of milliseconds of virtual time.
func layer2Config(c *Config) {
	c.FailSlow.Window = 20 * time.Millisecond
	c.FailSlow.WindowSlots = 5
	// Enough samples that one head-of-line burst (a write's rxe tail
	// delays the writes queued behind it on the connection) does not set
	// the baseline p99.
	c.FailSlow.BaselineSamples = 1500
	c.FailSlow.MinSamples = 20
	// Room for the writes in flight to a slow follower (sourcePending
	// holds a ring position until its write completes).
	c.LogSlots = 256
}

func followerState(r *Replica, id rdma.NodeID) FollowerLatency {
	for _, f := range r.FollowerLatency() {
		if f.Peer == id {
			return f
		}
	}
	return FollowerLatency{}
}

// TestFailSlowFollowerFlaggedCommitLatencyUnaffected5Seeds: 5 replicas
// under a steady load. After a warm-up that sets every follower's
// baseline, the leader's link to one follower gains 1 ms on a write's
// request leg (a ~15 µs write becomes ~1015 µs: over 10x its own p99
// baseline, which the 1% rxe tail puts at 25..70 µs). The leader must flag that follower fail-slow at the
// critical level and no other; its commit latency (Submit to commit, in
// virtual time) over the slow period must stay within 1.5x of the
// reference p50 and p99, because a majority (leader + 2 of the 3 fast
// followers) commits without the slow one; once the link recovers and the
// window ages out, the flag clears. No acknowledged put is lost.
//
// The reference is measured with the same majority: before the slowdown
// the follower trails by trailExtraNs (~115 µs writes, about 2x its
// baseline p99: under the warn ratio, not flagged), which keeps it off
// the commit path without making it fail-slow. Against a reference where
// it was as fast as the others the comparison would also count the spare
// the group loses (leader + 2 of 4 fast followers commit unless 3 of them
// hit an rxe tail at once, 2 of 3 as soon as 2 do): that moves the p99 by
// 1.2-1.3x in most seeds and past 1.5x in some (seed 37), whatever the
// slow follower does.
func TestFailSlowFollowerFlaggedCommitLatencyUnaffected5Seeds(t *testing.T) {
	const (
		periodNs     = 25_000_000 // > the 20 ms window: a period fills it
		slowExtraNs  = 1_000_000
		trailExtraNs = 100_000
		maxRatio     = 1.5
	)
	sim.Seeds(t, 5, func(t *testing.T, seed uint64) {
		c := newCluster(t, seed, 5, layer2Config)
		ldr := waitLeader(t, c, 20_000_000)
		victim := c.ids[len(c.ids)-1]
		if victim == ldr {
			victim = c.ids[len(c.ids)-2]
		}
		ld := startLoad(c, 3, 20_000)
		c.w.RunFor(25_000_000) // warm-up: baselines (~80 writes/ms per follower)
		r := c.reps[ldr]
		for _, f := range r.FollowerLatency() {
			if f.Learning {
				t.Fatalf("follower %d still learning its baseline after the warm-up (%d samples)", f.Peer, f.Samples)
			}
		}
		c.w.SetLinkDelay(ldr, victim, trailExtraNs, 0)
		pre0 := c.w.Now()
		c.w.RunFor(periodNs)
		if f := followerState(r, victim); f.FailSlow {
			t.Fatalf("follower %d trailing by %d us flagged before the slowdown: %+v", victim, trailExtraNs/1000, f)
		}
		slow0 := c.w.Now()
		c.w.SetLinkDelay(ldr, victim, slowExtraNs, 0)
		c.w.RunFor(periodNs)
		slow1 := c.w.Now()
		for _, f := range r.FollowerLatency() {
			switch {
			case f.Peer == victim && (f.Level != hwmon.Critical || !f.FailSlow):
				t.Fatalf("slow follower %d not flagged critical: %+v", f.Peer, f)
			case f.Peer != victim && f.FailSlow:
				t.Fatalf("fast follower %d flagged: %+v", f.Peer, f)
			}
		}
		vs := followerState(r, victim)
		pre, slow := ld.latenciesNs(ldr, pre0, slow0), ld.latenciesNs(ldr, slow0, slow1)
		if len(pre) < 100 || len(slow) < 100 {
			t.Fatalf("too few commits to compare: %d before, %d during the slowdown", len(pre), len(slow))
		}
		p50a, p99a, p50b, p99b := quantileNs(pre, 0.5), quantileNs(pre, 0.99), quantileNs(slow, 0.5), quantileNs(slow, 0.99)
		t.Logf("follower %d p99 %d us vs baseline %d us (%.1fx, %v); leader %d commit p50 %d -> %d us, p99 %d -> %d us (%d, %d commits; reference with it trailing)",
			victim, vs.P99Ns/1000, vs.BaselineP99Ns/1000, vs.SlowdownRatio, vs.Level, ldr, p50a/1000, p50b/1000, p99a/1000, p99b/1000, len(pre), len(slow))
		if float64(p50b) > maxRatio*float64(p50a) || float64(p99b) > maxRatio*float64(p99a) {
			t.Errorf("commit latency grew past %.1fx with one slow follower: p50 %d -> %d ns, p99 %d -> %d ns", maxRatio, p50a, p50b, p99a, p99b)
		}
		c.w.SetLinkDelay(ldr, victim, 0, 0)
		c.w.RunFor(periodNs)
		if f := followerState(r, victim); f.FailSlow || f.Samples < 20 {
			t.Fatalf("follower %d still flagged (or unmeasured) after recovering: %+v", victim, f)
		}
		if l, _ := c.leader(); l != ldr {
			t.Fatalf("leadership moved to %d during the test", l)
		}
		ld.stopAndCheck(t, c.ids)
	})
}

type noCollectors struct{}

func (noCollectors) Name() string { return "none" }
func (noCollectors) Collect(_ context.Context, s *hwmon.Snapshot) {
	s.Signals = append(s.Signals, hwmon.SignalStatus{Name: "none", Available: true})
}

// TestIdleLeaderProbesOnCadence: an idle leader commits one empty entry
// every ProbeIntervalNs; followers apply it (no command reaches the state
// machine), each follower's write latency and the probe commit latency
// are measured, and a Monitor reading ProbeSummary puts the probe p99 in
// the arbiter's probe-latency row.
func TestIdleLeaderProbesOnCadence(t *testing.T) {
	const intervalNs, spanNs = 1_000_000, 20_000_000
	c := newCluster(t, 5, 3, func(c *Config) { c.ProbeIntervalNs = intervalNs })
	ldr := waitLeader(t, c, 20_000_000)
	r := c.reps[ldr]
	c.w.RunFor(spanNs)
	probes := r.Stats().Probes
	if want := uint64(spanNs / intervalNs); probes+1 < want || probes > want+1 {
		t.Fatalf("%d probes in %d ms at one per %d ms", probes, spanNs/1_000_000, intervalNs/1_000_000)
	}
	c.w.RunFor(100_000)
	for _, id := range c.ids {
		if got, want := c.reps[id].AppliedIndex(), r.AppliedIndex(); got != want || c.sms[id].applied != 0 {
			t.Fatalf("node %d applied index %d (leader %d), %d commands", id, got, want, c.sms[id].applied)
		}
	}
	p99 := r.ProbeLatencyP99Ns()
	t.Logf("%d probes in %d ms; probe commit p99 %d us", probes, spanNs/1_000_000, p99/1000)
	if p99 < 10_000 || p99 > 200_000 {
		t.Fatalf("probe commit p99 %d ns, want a write round trip (10..200 us)", p99)
	}
	for _, f := range r.FollowerLatency() {
		if f.Samples < int64(probes)-2 || f.P99Ns < 10_000 {
			t.Fatalf("follower %d: %d write samples for %d probes, p99 %d ns", f.Peer, f.Samples, probes, f.P99Ns)
		}
	}
	hc := hwmon.DefaultConfig()
	hc.Thresholds.ProbeLatencyWarn = time.Microsecond // any probe p99 warns: the row must see it
	m, err := hwmon.NewMonitor(hc, hwmon.WithCollectors(noCollectors{}), hwmon.WithProbeSummary(r.ProbeSummary),
		hwmon.WithClock(func() time.Time { return time.Unix(0, c.w.Now()) }))
	if err != nil {
		t.Fatal(err)
	}
	rep := m.Step(context.Background())
	found := false
	for _, rs := range rep.Reasons {
		if rs.Row == hwmon.RowProbeLatency {
			found = true
			if want := float64(p99) / 1e6; rs.Value != want {
				t.Fatalf("probe row value %v ms, replica p99 %v ms", rs.Value, want)
			}
		}
	}
	if !found {
		t.Fatalf("probe row absent from %v", rep.Reasons)
	}
}
