package consensus

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

func TestClusterElectsAndReplicates(t *testing.T) {
	commits := map[rdma.NodeID][]Index{}
	c := newCluster(t, 1, 3, nil)
	for _, id := range c.ids {
		c.reps[id].cfg.OnCommit = func(i Index) { commits[id] = append(commits[id], i) }
	}
	if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
		t.Fatalf("no leader after 20 ms; leader log %v", c.leaderLog)
	}
	ldr, _ := c.leader()
	t.Logf("leader %d at %d ns", ldr, c.w.Now())
	done := 0
	c.onReply = func(node rdma.NodeID, token uint64, index Index, err error) {
		if err != nil {
			t.Errorf("op %d: %v", token, err)
		}
		done++
	}
	var buf [kvCmdBytes]byte
	for i := 0; i < 200; i++ {
		if err := c.reps[ldr].Submit(encodeKV(buf[:], true, uint8(i%7), uint64(i+1), uint64(i)), uint64(i)); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		if i%50 == 49 {
			c.w.RunFor(200_000)
		}
	}
	if !c.w.RunUntil(func() bool { return done == 200 }, c.w.Now()+20_000_000) {
		t.Fatalf("only %d/200 committed", done)
	}
	// Idle leader: followers learn the last commit through the commit word.
	c.w.RunFor(1_000_000)
	for _, id := range c.ids {
		if got := c.sms[id].applied; got != 200 {
			t.Errorf("node %d applied %d commands, want 200 (commit %d applied idx %d)", id, got, c.reps[id].CommitIndex(), c.reps[id].AppliedIndex())
		}
		// OnCommit reports every applied index once, in order.
		got := commits[id]
		if len(got) == 0 || got[len(got)-1] != c.reps[id].AppliedIndex() {
			t.Errorf("node %d commit notifications %v end before applied index %d", id, got, c.reps[id].AppliedIndex())
		}
		for k, i := range got {
			if i != Index(k+1) {
				t.Fatalf("node %d: commit notification %d is index %d, want %d", id, k, i, k+1)
			}
		}
	}
	c.checkSafety()
}

// submitN submits n puts to node at and runs until all reply or limit.
func (c *cluster) submitN(t *testing.T, at rdma.NodeID, first, n int) (ok, failed int) {
	t.Helper()
	c.onReply = func(node rdma.NodeID, token uint64, index Index, err error) {
		if err != nil {
			failed++
		} else {
			ok++
		}
	}
	var buf [kvCmdBytes]byte
	for i := first; i < first+n; i++ {
		if err := c.reps[at].Submit(encodeKV(buf[:], true, uint8(i%7), uint64(i+1), uint64(i)), uint64(i)); err != nil {
			t.Fatalf("submit %d to %d: %v", i, at, err)
		}
	}
	c.w.RunUntil(func() bool { return ok+failed == n }, c.w.Now()+20_000_000)
	return ok, failed
}

func TestLeaderCrashFailover(t *testing.T) {
	c := newCluster(t, 7, 3, nil)
	if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
		t.Fatal("no leader")
	}
	old, _ := c.leader()
	if ok, _ := c.submitN(t, old, 0, 50); ok != 50 {
		t.Fatalf("only %d/50 committed before the crash", ok)
	}
	crashAt := c.w.Now()
	c.w.Crash(old, false)
	var nl rdma.NodeID
	if !c.w.RunUntil(func() bool { var ok bool; nl, ok = c.leader(); return ok && nl != old }, crashAt+50_000_000) {
		t.Fatalf("no new leader 50 ms after the crash; log %v", c.leaderLog)
	}
	t.Logf("failover %d -> %d took %d us", old, nl, (c.w.Now()-crashAt)/1000)
	if ok, _ := c.submitN(t, nl, 50, 50); ok != 50 {
		t.Fatalf("only %d/50 committed by the new leader", ok)
	}
	c.w.RunFor(100_000) // commit-word propagation bound (5 us) with margin
	for _, id := range c.ids {
		if id == old {
			continue
		}
		if got := c.sms[id].applied; got != 100 {
			r := c.reps[id]
			t.Errorf("node %d applied %d, want 100; commit %d applied %d fenced %v behind %v stats %+v", id, got, r.commit, r.applied, r.fenced, r.behind, r.stats)
		}
	}
	// The crashed node comes back without its log and is caught up.
	c.w.Restart(old)
	if !c.w.RunUntil(func() bool {
		return c.sms[old].applied+c.reps[old].stats.SnapshotsRestored > 0 && c.reps[old].AppliedIndex() == c.reps[nl].AppliedIndex()
	}, c.w.Now()+50_000_000) {
		t.Fatalf("restarted node %d applied index %d, leader %d", old, c.reps[old].AppliedIndex(), c.reps[nl].AppliedIndex())
	}
	c.checkSafety()
}
