package consensus

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// TestSyncPromiseDurableBeforeCounted: in sync mode a candidate counts a
// peer's prepare only once the peer's promise is durable. Leader L stalls,
// cut off from C; C prepares on B and itself while B's disk is too slow
// to make C's promise durable, and writes its own value at index 2. B
// loses power and restarts from its journal as a voter that remembers
// only L's proposal. L resumes, re-elects with a proposal below C's (it
// never saw C's) and commits its value at index 2 with B. L stalls again
// and C leads with B: its recovery adopts its own value at index 2, under
// the higher proposal. When C counted B's prepare as soon as its
// min_proposal write completed, C applied a different command at index 2
// than L and B.
func TestSyncPromiseDurableBeforeCounted(t *testing.T) {
	sim.Seeds(t, seeds(20), func(t *testing.T, seed uint64) {
		d := newDurableCluster(t, seed, 3, DurabilitySync, sim.DefaultDiskConfig(), nil)
		w := d.w
		if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, 20_000_000) {
			t.Fatal("no leader")
		}
		L, _ := d.leader()
		var others []rdma.NodeID
		for _, id := range d.ids {
			if id != L {
				others = append(others, id)
			}
		}
		tok := uint64(1)
		submit := func(id rdma.NodeID, n int) {
			buf := make([]byte, 64)
			for k := 0; k < n; k++ {
				buf = encodeKV(buf[:0], true, uint8(id), tok, tok)
				_ = d.reps[id].Submit(buf, tok) // not leading: not written
				tok++
			}
			if !w.Node(id).Paused() {
				w.Pause(id) // wake it now: a Submit alone does not
				w.Resume(id)
			}
		}
		submit(L, 3)
		w.RunFor(3_000_000)
		// The follower with the slow disk is B; the other, C, must win.
		B, C := others[0], others[1]
		d.disks[B].SetSlow(1e6)
		w.Pause(L)
		w.CutBoth(L, C)
		if !w.RunUntil(func() bool { return d.reps[C].IsLeader() }, w.Now()+100_000_000) {
			// With its prepare on B never durable, C cannot lead.
			t.Logf("C not elected")
		}
		submit(C, 3)
		w.RunFor(200_000)
		// B loses power: the promise it never synced is gone.
		w.Pause(C)
		d.powerLoss(B, false)
		d.disks[B].SetSlow(1)
		w.RunFor(100_000)
		w.Restart(B)
		w.Resume(L)
		w.RunUntil(func() bool { return !d.reps[L].IsLeader() }, w.Now()+10_000_000)
		if !w.RunUntil(func() bool { return d.reps[L].IsLeader() }, w.Now()+100_000_000) {
			t.Logf("L not re-elected")
		}
		submit(L, 3)
		w.RunFor(3_000_000)
		// L stalls again; C resumes and leads with B.
		w.Pause(L)
		d.disks[B].SetSlow(1e6)
		w.Resume(C)
		w.RunUntil(func() bool { return d.reps[C].IsLeader() && d.reps[C].AppliedIndex() >= 2 }, w.Now()+300_000_000)
		w.RunFor(1_000_000)
		d.disks[B].SetSlow(1)
		w.Resume(L)
		w.HealNetwork()
		if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, w.Now()+100_000_000) {
			t.Fatal("no leader once healed")
		}
		w.RunFor(10_000_000)
		d.checkSafety()
	})
}
