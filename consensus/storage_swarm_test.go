package consensus

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// Storage fault kinds of the durable swarm, beside the network and CPU
// kinds of the classic swarm (pause, slow, partition, partial, oneway,
// delay, loss):
//
//   - crash: a replica's process dies (its page cache survives) and
//     restarts from its journal;
//   - powerloss: a replica's machine loses power (unsynced writes lost, a
//     group in flight torn, maybe leaving a hole) and restarts;
//   - powerloss-all: every machine loses power at once and all restart,
//     up to f of them with a torn journal;
//   - rot: a durable record of a replica's journal reads back bad (latent
//     sector error, bit rot) and the replica restarts and finds it;
//   - slowdisk: a replica's flushes take 2 to 50 times longer;
//   - fulldisk: a replica's disk fills up; it fences itself, and later an
//     operator frees space and restarts it.
var storageFaults = []string{"crash", "powerloss", "powerloss-all", "rot", "slowdisk", "fulldisk",
	"pause", "slow", "partition", "partial", "oneway", "delay", "loss"}

type storageSwarm struct {
	*swarm
	d       *durableCluster
	fenced  map[rdma.NodeID]bool // full disk, waiting for the operator
	capByte int64
}

// troubled counts replicas down, rejoining (a lost or damaged journal),
// restored in async mode and not yet caught up, or fenced by a full disk:
// each is one of the f failures tolerated.
func (s *storageSwarm) troubled() int {
	k := 0
	for _, id := range s.c.ids {
		r := s.c.reps[id]
		if s.down[id] || s.fenced[id] || r.rejoining || r.js != nil && r.js.restored {
			k++
		}
	}
	return k
}

// injectStorageFault applies one fault of kind and schedules its repair.
func (s *storageSwarm) injectStorageFault(kind string) {
	c, rng, w := s.c, s.rng, s.c.w
	n := len(c.ids)
	f := (n - 1) / 2
	a := c.ids[rng.IntN(n)]
	dur := int64(200_000 + rng.IntN(3_000_000))
	now := w.Now()
	note := func(format string, args ...any) {
		s.faults = append(s.faults, fmt.Sprintf("%d ", now)+fmt.Sprintf(format, args...))
	}
	switch kind {
	case "crash", "powerloss", "rot":
		if s.calm || s.down[a] || s.fenced[a] || s.troubled() >= f {
			return
		}
		s.down[a] = true
		switch kind {
		case "crash":
			s.d.processCrash(a)
			note("crash %d for %d", a, dur)
		case "powerloss":
			note("powerloss %d for %d: %s", a, dur, s.d.powerLoss(a, rng.IntN(2) == 0))
		case "rot":
			rec := s.d.disks[a].Rot()
			s.d.processCrash(a)
			note("rot %d record %d, crash for %d", a, rec, dur)
		}
		w.Schedule(now+dur, func() { delete(s.down, a); w.Restart(a) })
	case "powerloss-all":
		if s.calm || s.troubled() > 0 {
			return
		}
		tear := rng.Perm(n)[:rng.IntN(f+1)]
		for i, id := range c.ids {
			torn := false
			for _, k := range tear {
				torn = torn || k == i
			}
			s.down[id] = true
			note("powerloss-all %d: %s", id, s.d.powerLoss(id, torn))
		}
		w.Schedule(now+dur, func() {
			for _, id := range c.ids {
				delete(s.down, id)
				w.Restart(id)
			}
		})
	case "slowdisk":
		factor := 2 + rng.Float64()*48
		s.d.disks[a].SetSlow(factor)
		w.Schedule(now+dur, func() { s.d.disks[a].SetSlow(1) })
		note("slowdisk %d x%.1f for %d", a, factor, dur)
	case "fulldisk":
		if s.calm || s.down[a] || s.fenced[a] || s.troubled() >= f {
			return
		}
		s.fenced[a] = true
		s.d.disks[a].Fill()
		note("fulldisk %d for %d", a, dur)
		w.Schedule(now+dur, func() { s.operatorFrees(a) })
	default:
		s.injectFault([]string{kind})
	}
}

// operatorFrees makes room on a's disk and restarts it if it fenced.
func (s *storageSwarm) operatorFrees(a rdma.NodeID) {
	w := s.c.w
	s.d.disks[a].Free(s.capByte)
	delete(s.fenced, a)
	r := s.c.reps[a]
	if !r.Fenced() || w.Node(a).Crashed() {
		return
	}
	if err := r.StorageErr(); !errors.Is(err, ErrStorage) || !errors.Is(err, sim.ErrDiskFull) {
		s.fail("node %d fenced with storage error %v, want one naming the full disk", a, err)
	}
	s.d.processCrash(a)
	w.Restart(a)
}

// runStorageSwarm is one seeded run of the durable swarm in sync mode:
// clients issue puts and gets while a random subset of storage, network
// and CPU faults is injected; then faults stop, every machine may lose
// power once more, and the cluster must recover with every acknowledged
// operation.
func runStorageSwarm(t *testing.T, seed uint64, faultNs, livenessNs int64) {
	runStorageSwarmMode(t, seed, DurabilitySync, storageFaults, 0, faultNs, livenessNs)
}

// runStorageSwarmMode is runStorageSwarm in mode with faults drawn from
// kinds; with compactBytes > 0 each replica compacts its journal every
// compactBytes appended (compactingDisk). It returns the compactions and
// the restarts from a snapshot.
func runStorageSwarmMode(t *testing.T, seed uint64, mode Durability, kinds []string, compactBytes int, faultNs, livenessNs int64) (compactions, snapLoads int) {
	rng := rand.New(rand.NewPCG(seed, 0xd15c))
	n := 3
	if rng.IntN(3) == 0 {
		n = 5
	}
	var enabled []string
	for _, f := range kinds {
		if rng.IntN(2) == 0 {
			enabled = append(enabled, f)
		}
	}
	if len(enabled) == 0 {
		enabled = []string{kinds[rng.IntN(len(kinds))]}
	}
	dc := sim.DefaultDiskConfig()
	if rng.IntN(3) == 0 {
		// A virtio disk behind a hypervisor: about 0.7 ms a flush.
		dc.Sync = sim.Latency{BaseNs: 500_000, JitterNs: 400_000, TailProb: 0.02, TailMeanNs: 5_000_000}
	}
	var d *durableCluster
	if compactBytes > 0 {
		cds := map[rdma.NodeID]*compactingDisk{}
		defer func() {
			for _, c := range cds {
				compactions += c.compactions
				snapLoads += c.loadsFromSnp
			}
		}()
		d = newDurableClusterWith(t, seed, n, mode, nil, func(d *durableCluster, w *sim.World, id rdma.NodeID) {
			d.disks[id] = sim.NewDisk(w, id, dc)
			cds[id] = &compactingDisk{Disk: d.disks[id], everyBytes: compactBytes}
		}, func(id rdma.NodeID) Storage { return cds[id] })
	} else {
		d = newDurableCluster(t, seed, n, mode, dc, nil)
	}
	s := &storageSwarm{swarm: newSwarm(t, d.cluster), d: d, fenced: map[rdma.NodeID]bool{}, capByte: dc.CapacityBytes}
	fail := s.failer(seed, fmt.Sprintf("%v mode, n=%d disk flush %v faults enabled %v", mode, n, dc.Sync, enabled))
	s.watch(fail)
	// A virtio-class disk's 2% tail (5 ms mean) can hold a candidate's
	// promise several milliseconds.
	if !d.w.RunUntil(func() bool { _, ok := d.leader(); return ok }, 100_000_000) {
		fail("no leader 100 ms after boot")
	}
	for i := 0; i < s.clients; i++ {
		s.issue(i)
	}
	start := d.w.Now()
	for d.w.Now() < start+faultNs {
		s.injectStorageFault(enabled[rng.IntN(len(enabled))])
		d.w.RunFor(int64(300_000 + rng.IntN(1_500_000)))
	}
	for _, id := range d.ids {
		d.disks[id].SetSlow(1)
		if s.fenced[id] {
			s.operatorFrees(id)
		}
	}
	s.finish(seed, livenessNs, fail)
	acked := ackedCount(s.ops)
	if missing, _ := d.ackedMissing(s.ops); len(missing) > 0 {
		fail("lost %d of %d acknowledged: %v", len(missing), acked, missing[:min(5, len(missing))])
	}
	return
}

// TestStorageSwarm1000Seeds: 1000 seeded runs of 3 or 5 replicas in sync
// mode on simulated disks (an NVMe-class or a virtio-class flush), under a
// random subset of process crashes, single and total power losses (torn
// groups, holes), latent sector errors, slow and full disks, pauses, slow
// nodes, partitions, cuts, delay and loss, for 5 ms of virtual time while
// three clients issue puts and gets. Checked as the classic swarm (after
// every event: no two replicas apply different commands at an index, no
// commit index goes back; at the end: liveness within 60 ms, convergence,
// every acknowledged operation in the log, linearizability), and every
// acknowledged operation is applied again at its index by the replicas
// that restarted from their journals. Seeds run in parallel.
func TestStorageSwarm1000Seeds(t *testing.T) {
	sim.Seeds(t, seeds(1000), func(t *testing.T, seed uint64) {
		t.Parallel()
		runStorageSwarm(t, seed, 5_000_000, 60_000_000)
	})
}

// asyncStorageFaults are the durable swarm's faults without a total power
// loss: short of one, async mode loses nothing either (a restarted
// replica votes only beside every member, survivors' memory included).
var asyncStorageFaults = slices.DeleteFunc(slices.Clone(storageFaults), func(k string) bool { return k == "powerloss-all" })

// TestAsyncStorageSwarm: the durable swarm in async mode, every fault but
// the total power loss (TestAsyncTotalPowerLossElects covers that one):
// replicas crash, lose power (torn journals), rot and fill their disks
// and restart restored, and no acknowledged operation may be lost.
func TestAsyncStorageSwarm(t *testing.T) {
	sim.Seeds(t, seeds(200), func(t *testing.T, seed uint64) {
		t.Parallel()
		runStorageSwarmMode(t, seed, DurabilityAsync, asyncStorageFaults, 0, 5_000_000, 60_000_000)
	})
}

// TestStorageSwarmCompacting: the sync-mode durable swarm with every
// replica compacting its journal every 4 KB of records (a snapshot of its
// state machine and ring, committed once the records it replaces are
// durable), so restarts after crashes and power losses start from a
// snapshot and its tail. Nothing acknowledged may be lost.
func TestStorageSwarmCompacting(t *testing.T) {
	var mu sync.Mutex
	var runs, compactions, snapLoads int
	t.Cleanup(func() {
		t.Logf("%d seeds: %d compactions, %d restarts from a snapshot", runs, compactions, snapLoads)
		if runs >= 100 && (compactions == 0 || snapLoads == 0) && !t.Failed() {
			t.Errorf("%d compactions, %d restarts from a snapshot: the swarm did not exercise them", compactions, snapLoads)
		}
	})
	sim.Seeds(t, seeds(200), func(t *testing.T, seed uint64) {
		t.Parallel()
		c, l := runStorageSwarmMode(t, seed, DurabilitySync, storageFaults, 4096, 5_000_000, 60_000_000)
		mu.Lock()
		runs, compactions, snapLoads = runs+1, compactions+c, snapLoads+l
		mu.Unlock()
	})
}
