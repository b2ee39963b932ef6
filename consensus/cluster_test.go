package consensus

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

func TestClusterElectsAndReplicates(t *testing.T) {
	c := newCluster(t, 1, 3, nil)
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
	}
	c.checkSafety()
}
