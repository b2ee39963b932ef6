package consensus

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// durableCluster is a cluster whose replicas journal to simulated disks,
// which survive the replicas' crashes: a restarted replica loads its
// journal (New), never the memory it lost.
type durableCluster struct {
	*cluster
	disks map[rdma.NodeID]*sim.Disk
	// storageOf gives each replica process its storage (its disk).
	storageOf func(id rdma.NodeID) Storage
	// restarts counts replica processes started per node after the first.
	restarts map[rdma.NodeID]int
}

func newDurableCluster(t testing.TB, seed uint64, n int, mode Durability, dc sim.DiskConfig, mutate func(*Config)) *durableCluster {
	t.Helper()
	return newDurableClusterWith(t, seed, n, mode, mutate, func(d *durableCluster, w *sim.World, id rdma.NodeID) {
		d.disks[id] = sim.NewDisk(w, id, dc)
	}, nil)
}

// newDurableClusterWith builds the cluster with addDisk called for each
// node, and storageOf (nil: the simulated disks) for each process.
func newDurableClusterWith(t testing.TB, seed uint64, n int, mode Durability, mutate func(*Config),
	addDisk func(d *durableCluster, w *sim.World, id rdma.NodeID), storageOf func(id rdma.NodeID) Storage) *durableCluster {
	t.Helper()
	ids := make([]rdma.NodeID, n)
	for i := range ids {
		ids[i] = rdma.NodeID(i + 1)
	}
	cfg := testConfig(ids)
	cfg.Durability = mode
	if mutate != nil {
		mutate(&cfg)
	}
	c := &cluster{
		t: t, w: sim.New(seed, withTrace(simConfig())), cfg: cfg, ids: ids,
		reps: map[rdma.NodeID]*Replica{}, sms: map[rdma.NodeID]*kvSM{},
		applied: map[Index][][]byte{}, corruptions: map[rdma.NodeID]int{},
	}
	d := &durableCluster{cluster: c, disks: map[rdma.NodeID]*sim.Disk{}, restarts: map[rdma.NodeID]int{}, storageOf: storageOf}
	if d.storageOf == nil {
		d.storageOf = func(id rdma.NodeID) Storage { return d.disks[id] }
	}
	c.region = int(cfg.RegionBytes())
	for _, id := range ids {
		c.w.AddNode(id, c.region)
		if addDisk != nil {
			addDisk(d, c.w, id)
		}
	}
	c.w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll})
	for _, id := range ids {
		d.startDurable(id, true)
	}
	c.w.SetRestartHook(func(id rdma.NodeID) { d.restarts[id]++; d.startDurable(id, false) })
	return d
}

// startDurable is cluster.start for a journaling replica.
func (d *durableCluster) startDurable(id rdma.NodeID, newCluster bool) {
	cfg := d.cfg
	cfg.Storage = d.storageOf(id)
	cfg.NewCluster = newCluster
	d.install(id, cfg)
}

// powerLoss takes node id down as a machine losing power: its memory and
// what its disk had not synced are lost. tear lets a group in flight be
// torn with a later record landed (the journal then has a hole).
func (d *durableCluster) powerLoss(id rdma.NodeID, tear bool) string {
	if d.w.Node(id).Crashed() {
		return ""
	}
	d.w.Crash(id, false)
	return d.disks[id].PowerLoss(tear)
}

// processCrash takes node id down as its process dying: memory lost, the
// page cache (and so every appended record) kept.
func (d *durableCluster) processCrash(id rdma.NodeID) {
	if d.w.Node(id).Crashed() {
		return
	}
	d.w.Crash(id, false)
	d.disks[id].ProcessCrash()
}

// ackedMissing lists the acknowledged operations that no live replica's
// current state machine applied at their index, where one could show it:
// a replica whose state came from a snapshot above the index cannot.
func (d *durableCluster) ackedMissing(ops []*clientOp) (missing []string, checked int) {
	for _, op := range ops {
		if !op.acked {
			continue
		}
		seen, could := false, false
		for _, id := range d.ids {
			if d.w.Node(id).Crashed() || d.reps[id].Fenced() {
				continue
			}
			sm := d.sms[id]
			if at, ok := sm.at[op.op]; ok && at == op.index {
				seen = true
				break
			}
			if sm.base < op.index && Index(d.reps[id].AppliedIndex()) >= op.index {
				could = true
			}
		}
		if seen {
			checked++
		} else if could {
			missing = append(missing, fmt.Sprintf("op %d at index %d", op.op, op.index))
		}
	}
	return missing, checked
}

// compactingDisk is a simulated disk that compacts (a Compacter) in the
// simulator's time: a snapshot is committed once the records it stands
// for are durable (seen at the next Durable), and a power loss forgets
// one not yet committed. Load yields the committed snapshot, then the
// records after it. The disk keeps the records below the snapshot (the
// simulator cannot delete them), so what this exercises is the restart
// from a snapshot and its tail under the disk's faults.
type compactingDisk struct {
	*sim.Disk
	everyBytes   int
	sinceBytes   int
	snapSeq      uint64
	snap         []byte
	pendingSeq   uint64
	pending      []byte
	compactions  int
	loadsFromSnp int
}

func (c *compactingDisk) compactsInline() bool { return true }

func (c *compactingDisk) CompactDue() bool { return c.sinceBytes >= c.everyBytes }

func (c *compactingDisk) Compact(seq uint64, parts [][]byte) error {
	c.pendingSeq, c.pending = seq, bytes.Join(parts, nil)
	c.sinceBytes = 0
	return nil
}

func (c *compactingDisk) Append(rec []byte) (uint64, error) {
	c.sinceBytes += len(rec)
	return c.Disk.Append(rec)
}

func (c *compactingDisk) Durable() (uint64, error) {
	d, err := c.Disk.Durable()
	if c.pending != nil && d >= c.pendingSeq {
		c.snapSeq, c.snap, c.pending = c.pendingSeq, c.pending, nil
		c.compactions++
	}
	return d, err
}

func (c *compactingDisk) Load(fn func(rec []byte) error) error {
	c.pending = nil // not committed before the crash
	c.sinceBytes = 0
	if c.snap != nil {
		c.loadsFromSnp++
		if err := fn(c.snap); err != nil {
			return err
		}
	}
	seq := uint64(0)
	return c.Disk.Load(func(rec []byte) error {
		seq++
		if seq <= c.snapSeq {
			return nil
		}
		c.sinceBytes += len(rec)
		return fn(rec)
	})
}

func (c *compactingDisk) Reset() error {
	c.snap, c.snapSeq, c.pending = nil, 0, nil
	return c.Disk.Reset()
}

// checkStates fails when a live replica's key-value state differs from
// the puts applied at each index up to its own (the cluster's first
// writer per index): what a state restored from a snapshot holds cannot
// be checked op by op.
func (d *durableCluster) checkStates(t testing.TB) {
	t.Helper()
	for _, id := range d.ids {
		if d.w.Node(id).Crashed() {
			continue
		}
		sm := d.sms[id]
		want := map[uint8]uint64{}
		for i := Index(1); i <= sm.last; i++ {
			for _, cmd := range d.applied[i] {
				if cmd[0] == 1 {
					want[cmd[1]] = binary.LittleEndian.Uint64(cmd[10:])
				}
			}
		}
		if !maps.Equal(want, sm.data) {
			t.Fatalf("node %d at %d (snapshot at %d): state %v, the commands applied give %v", id, sm.last, sm.base, sm.data, want)
		}
	}
}
