package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/node"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
	"github.com/rdmaconsensus/mu/wal"
)

// durabilityBenchOptions shapes `mu bench durability`.
type durabilityBenchOptions struct {
	inproc   bool   // the in-process fabric instead of the device
	device   string // RDMA device ("" : the first)
	dataRoot string // the replicas' data directories go under it
	modes    []string
	size     int // payload bytes
	samples  int // proposals timed per mode (and raw operations per half)
	drive    string
	// segmentBytes sizes the journals' segments (0: the WAL's default,
	// as mu node uses); tests make them small.
	segmentBytes int64
}

// durabilityRow is one mode's commit latency, and what the journals did
// meanwhile (zero in memory mode).
type durabilityRow struct {
	Mode   string
	Commit *hdrhistogram.Histogram
	// RecordsPerCommit and GroupsPerCommit are journal records appended
	// and groups made durable per timed commit, averaged over replicas.
	RecordsPerCommit, GroupsPerCommit float64
	// Group is each group's write + fdatasync inside the WAL.
	Group *hdrhistogram.Histogram
}

// journalMeter counts the groups the replicas' WALs make durable.
type journalMeter struct {
	mu     sync.Mutex
	groups int64
	h      *hdrhistogram.Histogram
}

func (m *journalMeter) onGroup(_ uint64, _ int, latencyNs int64) {
	m.mu.Lock()
	m.groups++
	_ = m.h.RecordValue(latencyNs)
	m.mu.Unlock()
}

// reset starts counting afresh and returns the histogram it counted in.
func (m *journalMeter) reset() (groups int64, h *hdrhistogram.Histogram) {
	m.mu.Lock()
	defer m.mu.Unlock()
	groups, h = m.groups, m.h
	m.groups, m.h = 0, newLatencyHist()
	return groups, h
}

// durabilityResult is a whole run: the modes and the two raw floors.
type durabilityResult struct {
	Fabric   string
	Data     string
	RawWrite *hdrhistogram.Histogram // RDMA write round trip, post -> completion
	RawSync  *hdrhistogram.Histogram // pwrite + fdatasync on the data directory's device
	// RawSync3 is the same with 3 files synced at once, one per replica:
	// the replicas here share one device, as the VM's do.
	RawSync3  *hdrhistogram.Histogram
	SyncHalfs [2]int64 // raw fdatasync p50 before and after the modes (drift)
	Rows      []durabilityRow
}

// rawSyncRecordBytes is what one raw fdatasync sample writes: about a
// journal record of one small slot (record header, kind, slot header,
// payload).
const rawSyncRecordBytes = 256

// rawFdatasync times n appends of rawSyncRecordBytes at the end of a
// zero-filled preallocated file in dir, each followed by fdatasync: what
// the journal does per group, without the journal.
func rawFdatasync(dir string, n int, record func(ns int64)) error {
	f, err := os.CreateTemp(dir, "rawsync-*.dat")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size := int64(n+16) * rawSyncRecordBytes
	size = (size + 4095) &^ 4095
	zero := make([]byte, 1<<16)
	for off := int64(0); off < size; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero[:min(int64(len(zero)), size-off)], off); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	buf := make([]byte, rawSyncRecordBytes)
	fd := int(f.Fd())
	warm := max(n/10, 10)
	var off int64
	for i := range n + warm {
		buf[0] = byte(i)
		if off+rawSyncRecordBytes > size {
			off = 0
		}
		start := time.Now()
		if _, err := unix.Pwrite(fd, buf, off); err != nil {
			return err
		}
		if err := unix.Fdatasync(fd); err != nil {
			return err
		}
		if i >= warm {
			record(int64(time.Since(start)))
		}
		off += rawSyncRecordBytes
	}
	return nil
}

// inprocRawWrite times n RDMA writes of size bytes between two nodes of a
// fresh in-process network.
func inprocRawWrite(size, n int, record func(ns int64)) error {
	net, err := inproc.NewNetwork(inproc.DefaultConfig())
	if err != nil {
		return err
	}
	defer net.Close()
	a, err := net.AddNode(1, 1<<20)
	if err != nil {
		return err
	}
	if _, err := net.AddNode(2, 1<<20); err != nil {
		return err
	}
	// Writable from the start: no permission switch here.
	if err := net.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll}); err != nil {
		return err
	}
	return node.FabricRawLatency(a, 2, rdma.OpWrite, size, n, record)
}

// tmpfsDir is where sync-tmpfs journals: memory, where fdatasync returns
// at once.
const tmpfsDir = "/dev/shm"

// instantStorage is a journal durable as soon as a record is appended,
// kept nowhere: sync mode over it costs the protocol (the persisted index
// published, the leader's header reads), not a disk nor a flusher.
type instantStorage struct{ seq uint64 }

func (s *instantStorage) Load(func([]byte) error) error { return nil }
func (s *instantStorage) Reset() error                  { s.seq = 0; return nil }
func (s *instantStorage) Append([]byte) (uint64, error) { s.seq++; return s.seq, nil }
func (s *instantStorage) Durable() (uint64, error)      { return s.seq, nil }

// durableGroup is 3 replicas in this process, each journaling (when its
// mode says so) in its own directory.
type durableGroup struct {
	*verbsGroup
	net      *inproc.Network
	storages []*consensus.WALStorage
	meter    journalMeter
}

func (g *durableGroup) close() {
	g.verbsGroup.close()
	for _, s := range g.storages {
		s.Close()
	}
	if g.net != nil {
		g.net.Close()
	}
}

// newDurableGroup starts the replicas of one mode, as a new cluster, over
// the device (gid) or the in-process fabric.
func newDurableGroup(o durabilityBenchOptions, gid rdma.GIDEntry, mode, dir string) (*durableGroup, error) {
	g := &durableGroup{verbsGroup: &verbsGroup{nodes: map[rdma.NodeID]*replicaNode{}}}
	g.meter.h = newLatencyHist()
	for i := 1; i <= 3; i++ {
		g.ids = append(g.ids, rdma.NodeID(i))
	}
	cc := consensus.DefaultConfig()
	cc.Members = g.ids
	cc.MaxPayloadBytes = max(cc.MaxPayloadBytes, (o.size+64+63)/64*64)
	cc.MaxBulkWriteBytes = max(cc.MaxBulkWriteBytes, cc.MaxPayloadBytes+64)
	var err error
	cc.Durability, err = consensus.ParseDurability(strings.TrimSuffix(strings.TrimSuffix(mode, "-tmpfs"), "-instant"))
	if err != nil {
		return nil, err
	}
	cc.NewCluster = true
	var fabrics map[rdma.NodeID]rdma.Fabric
	var peers []node.Peer
	if o.inproc {
		// The regions do not depend on the mode; the check of the
		// storage is the replicas' own, below.
		fc := cc
		fc.Durability = consensus.DurabilityMemory
		if g.net, fabrics, err = node.InprocFabrics(g.ids, fc); err != nil {
			return nil, err
		}
	} else {
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		for i, id := range g.ids {
			peers = append(peers, node.Peer{ID: id, Address: fmt.Sprintf("127.0.0.1:%d", ports[i])})
		}
	}
	type started struct {
		id  rdma.NodeID
		nd  *replicaNode
		err error
	}
	ch := make(chan started, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, id := range g.ids {
		ncc := cc
		switch mode {
		case "memory":
		case "sync-instant":
			ncc.Storage = &instantStorage{}
		default:
			// The node's storage as `mu node` opens it
			// (config.Config.DurableStorage), with a meter on its groups.
			wm := wal.ModeSync
			if mode == "async" {
				wm = wal.ModeAsync
			}
			st, err := consensus.NewWALStorage(wal.Options{Dir: filepath.Join(dir, fmt.Sprintf("node%d", id)), Mode: wm,
				Method: wal.SyncFdatasync, PreallocZeros: true, SegmentBytes: o.segmentBytes, OnGroupDurable: g.meter.onGroup})
			if err != nil {
				g.close()
				return nil, fmt.Errorf("replica %d: %w", id, err)
			}
			g.storages = append(g.storages, st)
			ncc.Storage = st
		}
		nc := node.DefaultConfig()
		nc.ID, nc.ClusterID, nc.Consensus, nc.Poll = id, 0x6d75, ncc, pollMode(o.drive)
		if o.inproc {
			nc.Fabric = fabrics[id]
			nc.IdleSleepMax = time.Duration(cc.PullScore.BeatIntervalNs)
		} else {
			nc.Peers, nc.Device, nc.Insecure = peers, node.Spec(gid), true // loopback only, for a measurement
		}
		go func() {
			nd, err := startReplica(ctx, nc)
			ch <- started{id, nd, err}
		}()
	}
	var errs []error
	for range g.ids {
		s := <-ch
		if s.err != nil {
			errs = append(errs, fmt.Errorf("replica %d: %w", s.id, s.err))
			continue
		}
		g.nodes[s.id] = s.nd
	}
	if err := errors.Join(errs...); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// waitSpares waits until every journal's next segment is preallocated, so
// its zero-fill does not share the disk with the measurement.
func waitSpares(dir string, segmentBytes int64, timeout time.Duration) {
	if segmentBytes == 0 {
		segmentBytes = wal.DefaultSegmentBytes
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		spares, _ := filepath.Glob(filepath.Join(dir, "node*", "next.wal-spare"))
		full := 0
		for _, p := range spares {
			if st, err := os.Stat(p); err == nil && st.Size() >= segmentBytes {
				full++
			}
		}
		if full >= 3 {
			time.Sleep(500 * time.Millisecond) // its final sync
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func runDurabilityBench(ctx context.Context, o durabilityBenchOptions, progress io.Writer) (durabilityResult, error) {
	res := durabilityResult{RawWrite: newLatencyHist(), RawSync: newLatencyHist(), RawSync3: newLatencyHist()}
	var gid rdma.GIDEntry
	if o.inproc {
		res.Fabric = "in-process fabric (rdma/inproc: memory copies, no RDMA device; the write figures are not a network's)"
	} else {
		var err error
		if gid, err = pickGID(o.device); err != nil {
			return res, err
		}
		res.Fabric = fmt.Sprintf("RDMA device %s (GID %s)", gid.Device, gid)
	}
	root, err := os.MkdirTemp(o.dataRoot, "mu-durability-")
	if err != nil {
		return res, fmt.Errorf("--data-dir: %w", err)
	}
	defer os.RemoveAll(root)
	res.Data = describeFS(root)
	rec := func(h *hdrhistogram.Histogram) func(int64) { return func(ns int64) { _ = h.RecordValue(ns) } }
	// The raw floors are measured in two halves, before and after the
	// modes, so that drift of the device during the run weighs on both.
	raw := func(half int) error {
		if o.inproc {
			err = inprocRawWrite(o.size, o.samples/2, rec(res.RawWrite))
		} else {
			err = node.RawLatency(gid, rdma.OpWrite, o.size, o.samples/2, rec(res.RawWrite))
		}
		if err != nil {
			return fmt.Errorf("raw write: %w", err)
		}
		h := newLatencyHist()
		if err := rawFdatasync(root, o.samples/2, rec(h)); err != nil {
			return fmt.Errorf("raw fdatasync: %w", err)
		}
		res.SyncHalfs[half] = h.ValueAtQuantile(50)
		res.RawSync.Merge(h)
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := make([]error, 3)
		for i := range 3 {
			wg.Go(func() {
				errs[i] = rawFdatasync(root, o.samples/2, func(ns int64) {
					mu.Lock()
					_ = res.RawSync3.RecordValue(ns)
					mu.Unlock()
				})
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("raw fdatasync, 3 at once: %w", err)
		}
		return nil
	}
	if err := raw(0); err != nil {
		return res, err
	}
	for _, mode := range o.modes {
		fmt.Fprintf(progress, "mode %s: starting 3 replicas\n", mode)
		dir := filepath.Join(root, mode)
		if mode == "sync-tmpfs" {
			if dir, err = os.MkdirTemp(tmpfsDir, "mu-durability-"); err != nil {
				return res, fmt.Errorf("%s: %w", mode, err)
			}
			defer os.RemoveAll(dir)
		}
		g, err := newDurableGroup(o, gid, mode, dir)
		if err != nil {
			return res, fmt.Errorf("%s: %w", mode, err)
		}
		row, err := func() (durabilityRow, error) {
			defer g.close()
			if _, err := g.waitLeader(ctx, 2*time.Minute); err != nil {
				return durabilityRow{}, err
			}
			if mode != "memory" && mode != "sync-instant" {
				waitSpares(dir, o.segmentBytes, time.Minute)
			}
			// Warm-up, then the timed proposals, one at a time.
			if _, err := g.commitLatency(ctx, o.size, max(o.samples/10, 50)); err != nil {
				return durabilityRow{}, err
			}
			records := func() (n uint64) {
				for _, nd := range g.nodes {
					n += nd.n.Stats().JournalRecords
				}
				return n
			}
			r0 := records()
			g.meter.reset()
			h, err := g.commitLatency(ctx, o.size, o.samples)
			groups, gh := g.meter.reset()
			per := float64(o.samples * len(g.ids))
			return durabilityRow{Mode: mode, Commit: h, Group: gh,
				RecordsPerCommit: float64(records()-r0) / per, GroupsPerCommit: float64(groups) / per}, err
		}()
		if err != nil {
			return res, fmt.Errorf("%s: %w", mode, err)
		}
		res.Rows = append(res.Rows, row)
	}
	if err := raw(1); err != nil {
		return res, err
	}
	return res, nil
}

// writeDurabilityResult prints the table: each mode's commit latency beside
// the raw write round trip and fdatasync, and sync's ratio to their sum.
func writeDurabilityResult(w io.Writer, o durabilityBenchOptions, r durabilityResult) {
	fmt.Fprintf(w, "fabric: %s\ndata:   %s\n", r.Fabric, r.Data)
	fmt.Fprintf(w, "3 replicas in one process, %s drivers; %d B payloads, one proposal at a time (Propose on the leader -> committed and applied), %d per mode\n",
		o.drive, o.size, o.samples)
	wp50, wp99 := r.RawWrite.ValueAtQuantile(50), r.RawWrite.ValueAtQuantile(99)
	sp50, sp99 := r.RawSync.ValueAtQuantile(50), r.RawSync.ValueAtQuantile(99)
	fmt.Fprintf(w, "raw RDMA write round trip (%d B, post -> completion):  p50 %9s  p99 %9s\n", o.size, us(wp50), us(wp99))
	fmt.Fprintf(w, "raw fdatasync (%d B pwrite + fdatasync, same device): p50 %9s  p99 %9s  (p50 before the modes %s, after %s)\n",
		rawSyncRecordBytes, us(sp50), us(sp99), us(r.SyncHalfs[0]), us(r.SyncHalfs[1]))
	fmt.Fprintf(w, "raw fdatasync, 3 files at once (the 3 replicas share this device): p50 %9s  p99 %9s\n",
		us(r.RawSync3.ValueAtQuantile(50)), us(r.RawSync3.ValueAtQuantile(99)))
	floor := wp50 + sp50
	if slices.ContainsFunc(r.Rows, func(row durabilityRow) bool { return strings.HasPrefix(row.Mode, "sync-") }) {
		fmt.Fprintf(w, "sync-instant: sync mode over a journal durable at Append (the protocol's own cost); sync-tmpfs: the WAL on tmpfs (its flusher without the disk)\n")
	}
	fmt.Fprintf(w, "%-12s | %-23s | %s\n", "mode", "commit p50 / p99", "p50 / (write RTT p50 + fdatasync p50)")
	for _, row := range r.Rows {
		p50, p99 := row.Commit.ValueAtQuantile(50), row.Commit.ValueAtQuantile(99)
		ratio := fmt.Sprintf("%.2fx", float64(p50)/float64(max(floor, 1)))
		switch row.Mode {
		case "sync":
			verdict := "within"
			if float64(p50) > 1.3*float64(floor) {
				verdict = "MISSES"
			}
			ratio += fmt.Sprintf(" (%s the 1.3x target)", verdict)
		case "memory", "async":
			ratio += fmt.Sprintf(" (%.2fx the write RTT alone)", float64(p50)/float64(max(wp50, 1)))
		}
		fmt.Fprintf(w, "%-12s | %9s / %9s | %s\n", row.Mode, us(p50), us(p99), ratio)
		if row.Group.TotalCount() > 0 {
			fmt.Fprintf(w, "%12s | journal per commit and replica: %.2f records, %.2f durable groups; a group's write + fdatasync in the WAL p50 %s p99 %s\n",
				"", row.RecordsPerCommit, row.GroupsPerCommit, us(row.Group.ValueAtQuantile(50)), us(row.Group.ValueAtQuantile(99)))
		}
	}
}

func newBenchDurabilityCmd() *cobra.Command {
	var (
		o      durabilityBenchOptions
		fabric string
		modes  string
	)
	c := &cobra.Command{
		Use:   "durability",
		Short: "commit latency per durability mode beside the raw RDMA write round trip and the raw fdatasync of the same device",
		Long: `durability runs 3 replicas in this process once per mode (memory, async,
sync), each journaling in its own directory under --data-dir as mu node
does (fdatasync into zero-filled segments), and times Propose on the
leader, one proposal at a time. In the same run it measures the raw floors
sync mode is judged against: one signaled RDMA write of the payload size,
post to completion, and one small pwrite + fdatasync on the data
directory's device, each in two halves (before and after the modes) so
drift weighs on both. With --fabric inproc the replicas and the raw write
run over the in-process fabric, labelled as such: the disk figures are
real, the network ones are memory copies.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch fabric {
			case "verbs":
			case "inproc":
				o.inproc = true
			default:
				return fmt.Errorf("--fabric: %q is not verbs or inproc", fabric)
			}
			for _, m := range strings.Split(modes, ",") {
				m = strings.TrimSpace(m)
				if _, err := consensus.ParseDurability(m); err != nil && m != "sync-instant" && m != "sync-tmpfs" {
					return fmt.Errorf("--modes: %q is not memory, async, sync, sync-instant or sync-tmpfs", m)
				}
				o.modes = append(o.modes, m)
			}
			if o.samples < 20 {
				return fmt.Errorf("--samples: %d must be at least 20", o.samples)
			}
			if o.size < 1 {
				return fmt.Errorf("--size: %d must be at least 1", o.size)
			}
			if o.drive != PollSpin && o.drive != PollSpinYield && o.drive != PollIdleSleep {
				return fmt.Errorf("--drive: %q is not %s, %s or %s", o.drive, PollSpin, PollSpinYield, PollIdleSleep)
			}
			if err := checkPollers(o.drive, 3); err != nil {
				return fmt.Errorf("--drive: %w", err)
			}
			if o.dataRoot == "" {
				o.dataRoot = os.Getenv("SOFTROCE_DISK")
			}
			res, err := runDurabilityBench(cmd.Context(), o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			writeDurabilityResult(cmd.OutOrStdout(), o, res)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&fabric, "fabric", "verbs", "verbs (the RDMA device) or inproc (in this process, no device)")
	f.StringVar(&o.device, "device", "", "RDMA device (default: the first)")
	f.StringVar(&o.dataRoot, "data-dir", "", "where the journals go (default $SOFTROCE_DISK, the VM's scratch disk, else the temporary directory)")
	f.StringVar(&modes, "modes", "memory,async,sync,sync-instant,sync-tmpfs", "durability modes to measure, in order; sync-instant and sync-tmpfs split sync mode's cost")
	f.IntVar(&o.size, "size", 64, "payload bytes")
	f.IntVar(&o.samples, "samples", 2000, "proposals timed per mode; raw operations in all")
	f.StringVar(&o.drive, "drive", PollSpinYield, "replica driver: spin, spin-yield or idle-sleep")
	return c
}
