package consensus

import (
	"errors"
	"math/rand/v2"
	"strings"
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
	})
}

// restartLostDisk runs the scenario of a replica that lost its disk and
// restarts while its peers are slow: commits reach only the leader and
// replica a (b is cut off), a's machine is replaced (empty data
// directory) and restarted with newCluster as given, the leader's process
// dies, b comes back. With a voting on an empty log, a and b could elect a
// leader that lacks what the old majority committed. It returns the
// operations and whether a leader was elected while the old leader was
// down.
func restartLostDisk(t *testing.T, seed uint64, newCluster bool) (*durableCluster, *swarm, bool) {
	rng := rand.New(rand.NewPCG(seed, 0x115))
	dc := sim.DefaultDiskConfig()
	if rng.IntN(2) == 0 {
		dc.Sync = sim.Latency{BaseNs: 500_000, JitterNs: 400_000}
	}
	d := newDurableCluster(t, seed, 3, DurabilitySync, dc, nil)
	s := newSwarm(t, d.cluster)
	s.fail = func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
	w := d.w
	if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, 20_000_000) {
		t.Fatal("no leader")
	}
	ldr, _ := d.leader()
	var a, b rdma.NodeID
	for _, id := range d.ids {
		if id != ldr {
			if a == 0 {
				a = id
			} else {
				b = id
			}
		}
	}
	w.Partition([]rdma.NodeID{b}, []rdma.NodeID{ldr, a})
	runClients(s, int64(1_000_000+rng.IntN(3_000_000)))
	w.RunUntil(func() bool { return ackedCount(s.ops) >= 5 }, w.Now()+20_000_000)
	// a's machine is replaced: memory and disk gone.
	w.Crash(a, false)
	d.disks[a].Reset()
	// Its peers turn slow: the leader's CPU and the links towards a.
	w.SetSlow(ldr, 2+rng.Float64()*20)
	w.SetLinkDelay(ldr, a, int64(100_000+rng.IntN(500_000)), int64(rng.IntN(200_000)))
	w.RunFor(int64(rng.IntN(500_000)))
	w.SetRestartHook(func(id rdma.NodeID) { d.restarts[id]++; d.startDurable(id, newCluster && id == a) })
	w.Restart(a)
	w.RunFor(int64(rng.IntN(1_000_000)))
	// The old leader's process dies (its disk keeps its journal); b is
	// back.
	d.processCrash(ldr)
	w.HealNetwork()
	w.SetSlow(ldr, 1)
	elected := w.RunUntil(func() bool { _, ok := d.leader(); return ok }, w.Now()+int64(20_000_000+rng.IntN(20_000_000)))
	w.Restart(ldr)
	s.stopped = true
	if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, w.Now()+60_000_000) {
		t.Fatal("no leader once the old leader restarted")
	}
	w.RunFor(10_000_000)
	return d, s, elected
}

// TestRestartWithoutDiskNeverVotes is issue 11's restart that forgets, in
// sync mode over many seeds: a replica whose data directory is empty and
// that was not started with the new-cluster flag rejoins however slow its
// peers are, so with the old leader down no leader is elected from it and
// the cut-off replica, and once the old leader restarts from its journal
// every acknowledged operation is there and no replica applied a
// different command at an index.
func TestRestartWithoutDiskNeverVotes(t *testing.T) {
	sim.Seeds(t, seeds(200), func(t *testing.T, seed uint64) {
		t.Parallel()
		d, s, elected := restartLostDisk(t, seed, false)
		if elected {
			t.Fatal("a leader was elected from a replica without its journal and a stale one")
		}
		d.checkSafety()
		acked := ackedCount(s.ops)
		if missing, _ := d.ackedMissing(s.ops); len(missing) > 0 {
			t.Fatalf("lost %d of %d acknowledged: %v", len(missing), acked, missing[:min(5, len(missing))])
		}
		if acked == 0 {
			t.Fatal("nothing was acknowledged: the scenario proves nothing")
		}
	})
}

// TestDamagedJournalRejoins: a replica whose journal has a record that
// reads back bad (a latent sector error) discards it on restart and
// rejoins instead of voting; once caught up it votes again, and a total
// power loss afterwards still loses nothing acknowledged.
func TestDamagedJournalRejoins(t *testing.T) {
	sim.Seeds(t, seeds(20), func(t *testing.T, seed uint64) {
		d := newDurableCluster(t, seed, 3, DurabilitySync, sim.DefaultDiskConfig(), nil)
		s := newSwarm(t, d.cluster)
		s.fail = func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
		w := d.w
		if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, 20_000_000) {
			t.Fatal("no leader")
		}
		runClients(s, 3_000_000)
		ldr, _ := d.leader()
		a := d.ids[0]
		if a == ldr {
			a = d.ids[1]
		}
		if d.disks[a].Rot() == 0 {
			t.Fatal("empty journal")
		}
		d.processCrash(a)
		w.RunFor(200_000)
		w.Restart(a)
		r := d.reps[a]
		if st := r.stats; !r.rejoining || st.JournalDamaged != 1 {
			t.Fatalf("after loading a damaged journal: rejoining %v, JournalDamaged %d", r.rejoining, st.JournalDamaged)
		}
		if !w.RunUntil(func() bool { return !r.rejoining && r.js.voter }, w.Now()+30_000_000) {
			t.Fatalf("the damaged replica was not caught up: %s", r.debugString())
		}
		w.RunFor(3_000_000)
		for _, id := range d.ids {
			d.powerLoss(id, false)
		}
		for _, id := range d.ids {
			w.Restart(id)
		}
		s.stopped = true
		if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, w.Now()+50_000_000) {
			t.Fatal("no leader after the total power loss")
		}
		w.RunFor(5_000_000)
		d.checkSafety()
		if missing, _ := d.ackedMissing(s.ops); len(missing) > 0 {
			t.Fatalf("lost %d of %d acknowledged: %v", len(missing), ackedCount(s.ops), missing[:min(5, len(missing))])
		}
	})
}

// TestFullDiskFences: the leader's disk fills up. It fences itself with
// an error that names the full disk, never stalls silently, and another
// replica takes over and commits.
func TestFullDiskFences(t *testing.T) {
	d := newDurableCluster(t, 3, 3, DurabilitySync, sim.DefaultDiskConfig(), nil)
	s := newSwarm(t, d.cluster)
	s.fail = func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
	w := d.w
	if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, 20_000_000) {
		t.Fatal("no leader")
	}
	runClients(s, 2_000_000)
	ldr, _ := d.leader()
	d.disks[ldr].Fill()
	r := d.reps[ldr]
	if !w.RunUntil(r.Fenced, w.Now()+5_000_000) {
		t.Fatal("the replica with a full disk did not fence itself")
	}
	err := r.StorageErr()
	if !errors.Is(err, ErrStorage) || !errors.Is(err, sim.ErrDiskFull) {
		t.Fatalf("StorageErr = %v, want ErrStorage wrapping sim.ErrDiskFull", err)
	}
	if r.Stats().StorageErrors == 0 {
		t.Fatal("Stats.StorageErrors not counted")
	}
	before := ackedCount(s.ops)
	if !w.RunUntil(func() bool { return ackedCount(s.ops) > before+20 }, w.Now()+50_000_000) {
		t.Fatal("no commits after the leader's disk filled up")
	}
	if l, ok := d.leader(); !ok || l == ldr {
		t.Fatalf("leader %d (%v) after the fence", l, ok)
	}
	t.Logf("fenced: %v", err)
}

// TestAsyncReportsLossWindow: in async mode commit does not wait for the
// disk; with a slow disk the leader reports the entries and time a total
// failure would lose. A replica restarted from its journal restores what
// it proves, and the running group does not count it until its leader
// caught it up.
func TestAsyncReportsLossWindow(t *testing.T) {
	dc := sim.DiskConfig{Sync: sim.Latency{BaseNs: 2_000_000, JitterNs: 1_000_000}}
	d := newDurableCluster(t, 5, 3, DurabilityAsync, dc, nil)
	s := newSwarm(t, d.cluster)
	s.fail = func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
	w := d.w
	if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, 20_000_000) {
		t.Fatal("no leader")
	}
	ldr, _ := d.leader()
	for i := 0; i < s.clients; i++ {
		s.issue(i)
	}
	var maxEntries uint64
	var maxNs int64
	for k := 0; k < 100; k++ {
		w.RunFor(50_000)
		st := d.reps[ldr].Stats()
		maxEntries, maxNs = max(maxEntries, st.LossWindowEntries), max(maxNs, st.LossWindowNs)
	}
	if maxEntries == 0 || maxNs == 0 {
		t.Fatalf("loss window never reported: %d entries, %d ns", maxEntries, maxNs)
	}
	t.Logf("largest loss window: %d entries, %d µs", maxEntries, maxNs/1000)
	a := d.ids[0]
	if a == ldr {
		a = d.ids[1]
	}
	d.processCrash(a)
	w.RunFor(5_000_000)
	w.Restart(a)
	r := d.reps[a]
	// Restored: the running group's candidates do not count it (it
	// publishes flagRejoining) until its leader has caught it up.
	if !r.js.restored || r.restoredFlags()&flagRejoining == 0 || r.stats.RestoredIndex == 0 {
		t.Fatalf("async restart: restored %v flags %x, restored index %d", r.js.restored, r.restoredFlags(), r.stats.RestoredIndex)
	}
	s.stopped = true
	if !w.RunUntil(func() bool { return !r.js.restored && r.AppliedIndex() == d.reps[ldr].AppliedIndex() }, w.Now()+100_000_000) {
		t.Fatalf("the restarted replica did not catch up: %s\nleader: %s", r.debugString(), d.reps[ldr].debugString())
	}
	d.checkSafety()
}

func TestDurabilityConfig(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		field  string
	}{
		{func(c *Config) { c.Durability = DurabilitySync }, "Storage"},
		{func(c *Config) { c.Durability = DurabilityAsync }, "Storage"},
		{func(c *Config) { c.Storage = &sim.Disk{} }, "Storage"},
		{func(c *Config) { c.Durability = 7 }, "Durability"},
	}
	for _, tc := range cases {
		c := testConfig([]rdma.NodeID{1, 2, 3})
		tc.mutate(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Validate = %v, want an error naming %s", err, tc.field)
		}
	}
	for _, s := range []string{"memory", "async", "sync"} {
		d, err := ParseDurability(s)
		if err != nil || d.String() != s {
			t.Errorf("ParseDurability(%q) = %v, %v", s, d, err)
		}
	}
	if _, err := ParseDurability("fast"); err == nil {
		t.Error("ParseDurability accepted fast")
	}
}

// asyncTotalPowerLoss runs one seed of an async-mode total failure: three
// replicas take client operations on a disk whose flushes are fast or
// slow, every machine loses power at a random moment (memory and unsynced
// writes gone) and all restart from their disks. A leader must be elected
// from the journals, every replica must converge on its log, the
// acknowledged operations lost must be at most the loss window the
// replicas reported just before the failure, and they must be the last
// ones: every acknowledged operation below the highest one kept is kept.
// The window is the leader's (the one that acknowledged). It returns the acknowledged commands lost and acknowledged, and the
// window in entries.
func asyncTotalPowerLoss(t *testing.T, seed uint64) (lost, acked int, window uint64) {
	rng := rand.New(rand.NewPCG(seed, 0xa57c))
	dc := sim.DefaultDiskConfig()
	if rng.IntN(2) == 0 {
		dc.Sync = sim.Latency{BaseNs: 500_000, JitterNs: 400_000, TailProb: 0.02, TailMeanNs: 5_000_000}
	}
	// Half the seeds compact their journals every 4 KB: the restarts then
	// load a snapshot and its tail.
	var d *durableCluster
	cds := map[rdma.NodeID]*compactingDisk{}
	if rng.IntN(2) == 0 {
		d = newDurableClusterWith(t, seed, 3, DurabilityAsync, nil, func(d *durableCluster, w *sim.World, id rdma.NodeID) {
			d.disks[id] = sim.NewDisk(w, id, dc)
			cds[id] = &compactingDisk{Disk: d.disks[id], everyBytes: 4096}
		}, func(id rdma.NodeID) Storage { return cds[id] })
	} else {
		d = newDurableCluster(t, seed, 3, DurabilityAsync, dc, nil)
	}
	s := newSwarm(t, d.cluster)
	s.fail = func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
	w := d.w
	if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, 20_000_000) {
		t.Fatal("no leader")
	}
	runClients(s, int64(1_000_000+rng.IntN(5_000_000)))
	// The bound: the window the leader reports, the one that acknowledged
	// (what it committed beyond its own journal).
	ldr, ok := d.leader()
	if !ok {
		t.Fatal("no leader at the power loss")
	}
	window = d.reps[ldr].Stats().LossWindowEntries
	var commit, persisted uint64
	for _, id := range d.ids {
		commit, persisted = max(commit, uint64(d.reps[id].CommitIndex())), max(persisted, d.reps[id].Stats().Persisted)
	}
	for _, id := range d.ids {
		d.powerLoss(id, false)
	}
	s.stopped = true
	w.RunFor(int64(rng.IntN(1_000_000)))
	for _, id := range d.ids {
		w.Restart(id)
	}
	// What the restarts replayed was checked against what was applied
	// before; above it the recovery may choose again (the lost window).
	var restored Index
	for _, id := range d.ids {
		restored = max(restored, Index(d.reps[id].applied)) // AppliedIndex is published by Step
	}
	for i := range d.applied {
		if i > restored {
			delete(d.applied, i)
		}
	}
	if !w.RunUntil(func() bool { _, ok := d.leader(); return ok }, w.Now()+50_000_000) {
		for _, id := range d.ids {
			t.Log(d.reps[id].debugString())
		}
		t.Fatal("no leader after the total power loss")
	}
	ldr, _ = d.leader()
	if !w.RunUntil(func() bool {
		// The recovered log committed, and applied everywhere.
		l := d.reps[ldr]
		if uint64(l.CommitIndex())+1 < l.next {
			return false
		}
		for _, id := range d.ids {
			if d.reps[id].AppliedIndex() != l.CommitIndex() {
				return false
			}
		}
		return true
	}, w.Now()+50_000_000) {
		for _, id := range d.ids {
			t.Log(d.reps[id].debugString())
		}
		t.Fatal("the replicas did not converge after the total power loss")
	}
	d.checkSafety()
	d.checkStates(t)
	var highestKept Index
	kept := map[*clientOp]bool{}
	lostAt := map[Index]bool{}
	for _, op := range s.ops {
		if !op.acked {
			continue
		}
		acked++
		for _, id := range d.ids {
			// Inside a restored snapshot it cannot be seen op by op:
			// checkStates compares the state itself.
			if at, ok := d.sms[id].at[op.op]; ok && at == op.index || op.index <= d.sms[id].base {
				kept[op] = true
				highestKept = max(highestKept, op.index)
				break
			}
		}
		if !kept[op] {
			lost++
			lostAt[op.index] = true
		}
	}
	for _, op := range s.ops {
		if op.acked && !kept[op] && op.index <= highestKept {
			t.Fatalf("op %d acknowledged at index %d was lost but a later one (index %d) was kept", op.op, op.index, highestKept)
		}
	}
	snapLoads := 0
	for _, c := range cds {
		snapLoads += c.loadsFromSnp
	}
	t.Logf("%d of %d replicas restarted from a snapshot", snapLoads, len(d.ids))
	// The window counts log entries; an entry carries a batch of commands.
	if uint64(len(lostAt)) > window {
		t.Fatalf("lost %d acknowledged commands in %d entries, above the leader's reported window of %d entries (commit %d, highest persisted %d)",
			lost, len(lostAt), window, commit, persisted)
	}
	return lost, acked, window
}

// TestAsyncTotalPowerLossElects: after every replica of an async group
// loses power, the group elects a leader from the journals and loses at
// most the reported window. MU_SEEDS=1000 for the long run.
func TestAsyncTotalPowerLossElects(t *testing.T) {
	var lost, acked int
	var window uint64
	sim.Seeds(t, seeds(40), func(t *testing.T, seed uint64) {
		l, a, w := asyncTotalPowerLoss(t, seed)
		lost, acked, window = lost+l, acked+a, window+w
		t.Logf("lost %d of %d acknowledged commands, reported window %d entries", l, a, w)
	})
	t.Logf("all seeds: lost %d of %d acknowledged commands, reported windows summing to %d entries", lost, acked, window)
}
