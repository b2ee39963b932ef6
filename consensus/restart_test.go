package consensus

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// runClients starts the swarm's clients and runs the world for ns.
func runClients(s *swarm, ns int64) {
	for i := 0; i < s.clients; i++ {
		s.issue(i)
	}
	s.c.w.RunFor(ns)
}

func ackedCount(ops []*clientOp) int {
	n := 0
	for _, op := range ops {
		if op.acked {
			n++
		}
	}
	return n
}

// TestSyncTotalPowerLossKeepsAcknowledged: three replicas in sync mode
// take client operations, then every machine loses power at once (memory
// and unsynced writes gone) and restarts from its disk. A leader is
// elected from the journals and every acknowledged operation is applied
// again at its index.
func TestSyncTotalPowerLossKeepsAcknowledged(t *testing.T) {
	sim.Seeds(t, seeds(20), func(t *testing.T, seed uint64) {
		d := newDurableCluster(t, seed, 3, DurabilitySync, sim.DefaultDiskConfig(), nil)
		s := newSwarm(t, d.cluster)
		s.fail = func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
		if !d.w.RunUntil(func() bool { _, ok := d.leader(); return ok }, 20_000_000) {
			t.Fatal("no leader")
		}
		runClients(s, 5_000_000)
		for _, id := range d.ids {
			d.powerLoss(id, false)
		}
		d.w.RunFor(100_000)
		for _, id := range d.ids {
			d.w.Restart(id)
		}
		s.stopped = true
		if !d.w.RunUntil(func() bool { _, ok := d.leader(); return ok }, d.w.Now()+50_000_000) {
			for _, id := range d.ids {
				t.Log(d.reps[id].debugString())
			}
			t.Fatal("no leader after the total power loss")
		}
		ldr, _ := d.leader()
		d.w.RunFor(5_000_000)
		d.checkSafety()
		acked := ackedCount(s.ops)
		if acked < 10 {
			t.Fatalf("only %d acknowledged operations", acked)
		}
		missing, checked := d.ackedMissing(s.ops)
		if len(missing) > 0 {
			t.Fatalf("lost %d of %d acknowledged: %v", len(missing), acked, missing[:min(5, len(missing))])
		}
		t.Logf("lost 0 of %d acknowledged (%d checked); leader %d applied %d", acked, checked, ldr, d.reps[ldr].AppliedIndex())
		_ = rdma.NodeID(0)
	})
}
