package consensus

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

func waitLeader(t *testing.T, c *cluster, limitNs int64) rdma.NodeID {
	t.Helper()
	var l rdma.NodeID
	if !c.w.RunUntil(func() bool { var ok bool; l, ok = c.leader(); return ok }, c.w.Now()+limitNs) {
		t.Fatalf("no leader within %d ms; %v", limitNs/1_000_000, c.leaderLog)
	}
	return l
}

// submitSlots commits n proposals one slot each (waiting for each), so the
// log advances by n indices.
func submitSlots(t *testing.T, c *cluster, at rdma.NodeID, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if ok, _ := c.submitN(t, at, i, 1); ok != 1 {
			t.Fatalf("proposal %d did not commit", i)
		}
	}
}

func converged(c *cluster, ids ...rdma.NodeID) bool {
	for _, id := range ids[1:] {
		if c.reps[id].AppliedIndex() != c.reps[ids[0]].AppliedIndex() {
			return false
		}
	}
	return true
}

// An idle leader's last entry becomes committed on every replica within
// CommitPropagationNs plus one write's latency (bound here: 100 us, on the
// rxe-fitted latencies without their rare exponential tail, once the
// permission switches of the election are over).
func TestIdleLeaderCommitReachesFollowersWithin100us(t *testing.T) {
	const boundNs = 100_000
	sc := simConfig()
	for _, l := range []*sim.Latency{&sc.WriteRequest, &sc.WriteAck, &sc.ReadRequest, &sc.ReadResponse} {
		l.TailProb = 0
	}
	for seed := uint64(1); seed <= 20; seed++ {
		c := newClusterSim(t, seed, 3, sc, nil)
		ldr := waitLeader(t, c, 20_000_000)
		c.w.RunFor(1_000_000)
		var at int64
		var idx Index
		c.onReply = func(_ rdma.NodeID, _ uint64, index Index, err error) {
			if err == nil {
				at, idx = c.w.Now(), index
			}
		}
		var buf [kvCmdBytes]byte
		if err := c.reps[ldr].Submit(encodeKV(buf[:], true, 1, 1, 1), 1); err != nil {
			t.Fatal(err)
		}
		if !c.w.RunUntil(func() bool { return idx != 0 }, c.w.Now()+10_000_000) {
			t.Fatal("proposal did not commit")
		}
		// Nothing else is proposed: only the commit word can tell them.
		if !c.w.RunUntil(func() bool {
			for _, id := range c.ids {
				if c.reps[id].AppliedIndex() < idx {
					return false
				}
			}
			return true
		}, at+boundNs) {
			t.Fatalf("seed %d: last entry %d not applied everywhere %d us after the leader committed it", seed, idx, boundNs/1000)
		}
		if c.reps[ldr].Stats().CommitWords == 0 {
			t.Fatalf("seed %d: followers learned the commit without a commit word", seed)
		}
	}
}

// A follower cut off for a while (less than the log holds) is caught up by
// bulk writes of the missing range, without a snapshot.
func TestLaggingFollowerCaughtUpByBulkWrite(t *testing.T) {
	c := newCluster(t, 11, 3, nil)
	ldr := waitLeader(t, c, 20_000_000)
	lag := c.ids[2]
	if lag == ldr {
		lag = c.ids[1]
	}
	var others []rdma.NodeID
	for _, id := range c.ids {
		if id != lag {
			others = append(others, id)
		}
	}
	c.w.Partition([]rdma.NodeID{lag}, others)
	catchUps := c.reps[ldr].Stats().CatchUps
	submitSlots(t, c, ldr, 0, c.cfg.LogSlots/3)
	c.w.HealNetwork()
	if !c.w.RunUntil(func() bool { return converged(c, ldr, lag) }, c.w.Now()+20_000_000) {
		t.Fatalf("lagging follower at %d, leader at %d", c.reps[lag].AppliedIndex(), c.reps[ldr].AppliedIndex())
	}
	if c.reps[ldr].Stats().CatchUps == catchUps {
		t.Fatal("follower converged without a catch-up")
	}
	if c.reps[lag].Stats().SnapshotsRestored != 0 {
		t.Fatal("a follower within the log was restored from a snapshot")
	}
	c.checkSafety()
}

// A follower away longer than the log holds is restored from a snapshot,
// whether it was cut off (memory intact) or crashed and restarted empty.
func TestFollowerOffTheLogRestoredFromSnapshot(t *testing.T) {
	for _, crash := range []bool{false, true} {
		c := newCluster(t, 13, 3, nil)
		ldr := waitLeader(t, c, 20_000_000)
		lag := c.ids[2]
		if lag == ldr {
			lag = c.ids[1]
		}
		if crash {
			c.w.Crash(lag, false)
		} else {
			var others []rdma.NodeID
			for _, id := range c.ids {
				if id != lag {
					others = append(others, id)
				}
			}
			c.w.Partition([]rdma.NodeID{lag}, others)
		}
		submitSlots(t, c, ldr, 0, 2*c.cfg.LogSlots+5)
		if crash {
			c.w.Restart(lag)
		} else {
			c.w.HealNetwork()
		}
		if !c.w.RunUntil(func() bool { return converged(c, ldr, lag) }, c.w.Now()+50_000_000) {
			t.Fatalf("crash=%v: follower at %d, leader at %d\n%s", crash, c.reps[lag].AppliedIndex(), c.reps[ldr].AppliedIndex(), c.reps[ldr].debugString())
		}
		if c.reps[lag].Stats().SnapshotsRestored == 0 {
			t.Fatalf("crash=%v: follower converged without a snapshot", crash)
		}
		for k, v := range c.sms[ldr].data {
			if c.sms[lag].data[k] != v {
				t.Fatalf("crash=%v: key %d = %d on the restored follower, %d on the leader", crash, k, c.sms[lag].data[k], v)
			}
		}
		// It takes part again: with the other follower down, it forms the majority.
		other := c.ids[0]
		for _, id := range c.ids {
			if id != ldr && id != lag {
				other = id
			}
		}
		c.w.Crash(other, false)
		if ok, _ := c.submitN(t, ldr, 1000, 5); ok != 5 {
			t.Fatalf("crash=%v: restored follower does not count in the majority", crash)
		}
		c.checkSafety()
	}
}

// The ring is reclaimed from the slowest live follower's applied position:
// a slow but live follower holds the leader back instead of being dropped,
// and the log wraps many times without a stop-the-world reset.
func TestLogReclaimedFromSlowestLiveFollower(t *testing.T) {
	// One command per slot, so the ring turns over quickly.
	c := newCluster(t, 17, 3, func(cfg *Config) { cfg.MaxPayloadBytes = 32 })
	ldr := waitLeader(t, c, 20_000_000)
	slow := c.ids[2]
	if slow == ldr {
		slow = c.ids[1]
	}
	// The slow follower's CPU stalls 150 us out of every 300 us: too short
	// for the detector to call it failed (its score dips and recovers),
	// long enough for the leader to run a whole ring ahead of it.
	stop := false
	var toggle func(paused bool)
	toggle = func(paused bool) {
		if stop {
			c.w.Resume(slow)
			return
		}
		if paused {
			c.w.Resume(slow)
		} else {
			c.w.Pause(slow)
		}
		c.w.Schedule(c.w.Now()+150_000, func() { toggle(!paused) })
	}
	toggle(false)
	n := 6 * c.cfg.LogSlots
	for i := 0; i < n; i += 128 {
		if ok, _ := c.submitN(t, ldr, i, 128); ok != 128 {
			t.Fatalf("%d/128 committed", ok)
		}
	}
	stop = true
	if !c.w.RunUntil(func() bool { return converged(c, c.ids...) }, c.w.Now()+20_000_000) {
		t.Fatal("replicas did not converge")
	}
	if got := uint64(c.reps[ldr].AppliedIndex()); got <= 2*uint64(c.cfg.LogSlots) {
		t.Fatalf("log advanced to %d, less than two ring wraps", got)
	}
	if c.reps[slow].Stats().SnapshotsRestored != 0 {
		t.Fatal("a live follower fell off the log")
	}
	if c.reps[ldr].Stats().ReclaimStalls == 0 {
		t.Fatal("the slow follower never held the ring back: the test did not exercise reclamation")
	}
	c.checkSafety()
}
