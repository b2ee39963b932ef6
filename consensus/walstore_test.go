package consensus

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/wal"
)

func walOpts(dir string) wal.Options {
	return wal.Options{Dir: dir, Mode: wal.ModeSync, SegmentBytes: 1 << 20, PreallocZeros: true}
}

// TestWALStorageRecords: records come back in order after a reopen; a
// flipped byte in a record followed by valid ones is a damaged journal,
// which Reset moves aside.
func TestWALStorageRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := NewWALStorage(walOpts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(func([]byte) error { t.Fatal("record in a new directory"); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if seq, err := s.Append([]byte{byte(i), 1, 2, 3}); err != nil || seq != uint64(i+1) {
			t.Fatalf("Append %d = %d, %v", i, seq, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for d, _ := s.Durable(); d < 10; d, _ = s.Durable() {
		if time.Now().After(deadline) {
			t.Fatal("not durable after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = NewWALStorage(walOpts(dir))
	var got []byte
	if err := s.Load(func(rec []byte) error { got = append(got, rec[0]); return nil }); err != nil {
		t.Fatal(err)
	}
	if string(got) != "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09" {
		t.Fatalf("reloaded %x", got)
	}
	s.Close()
	// Damage the third record's payload.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	b, _ := os.ReadFile(segs[0])
	b[2*(wal.HeaderBytes+4)+wal.HeaderBytes] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ = NewWALStorage(walOpts(dir))
	err = s.Load(func([]byte) error { return nil })
	if !journalDamaged(err) {
		t.Fatalf("Load of a damaged directory = %v, want a damaged journal", err)
	}
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(dir + ".damaged.1"); err != nil {
		t.Fatalf("damaged directory not kept aside: %v", err)
	}
	if seq, err := s.Append([]byte{9}); err != nil || seq != 1 {
		t.Fatalf("Append after Reset = %d, %v", seq, err)
	}
}

// TestWALStorageTotalFailure: three replicas in sync mode journal to real
// WAL directories; every process is killed (its storage closed, memory
// lost) and restarted on the same directories; every acknowledged
// operation is applied again at its index. The WAL's flusher runs in real
// time while the simulator steps, so this test is not seeded.
func TestWALStorageTotalFailure(t *testing.T) {
	root := t.TempDir()
	stores := map[rdma.NodeID]*WALStorage{}
	open := func(id rdma.NodeID) Storage {
		s, err := NewWALStorage(walOpts(filepath.Join(root, fmt.Sprint(id))))
		if err != nil {
			t.Fatal(err)
		}
		stores[id] = s
		return s
	}
	d := newDurableClusterWith(t, 1, 3, DurabilitySync, nil, nil, open)
	s := newSwarm(t, d.cluster)
	s.fail = func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
	w := d.w
	// Virtual time runs far ahead of the disk: step it in small pieces
	// and let real time pass for the flusher.
	run := func(pred func() bool, virtualNs int64) bool {
		deadline := time.Now().Add(20 * time.Second)
		for !pred() && time.Now().Before(deadline) {
			w.RunFor(virtualNs)
			time.Sleep(20 * time.Microsecond)
		}
		return pred()
	}
	if !run(func() bool { _, ok := d.leader(); return ok }, 100_000) {
		t.Fatal("no leader")
	}
	for i := 0; i < s.clients; i++ {
		s.issue(i)
	}
	if !run(func() bool { return ackedCount(s.ops) >= 50 }, 10_000) {
		t.Fatalf("%d acknowledged", ackedCount(s.ops))
	}
	s.stopped = true
	for _, id := range d.ids {
		w.Crash(id, false)
		stores[id].Close()
	}
	for _, id := range d.ids {
		w.Restart(id)
	}
	if !run(func() bool { _, ok := d.leader(); return ok }, 100_000) {
		t.Fatal("no leader after the restart")
	}
	var top Index
	for _, op := range s.ops {
		if op.acked {
			top = max(top, op.index)
		}
	}
	if !run(func() bool { l, ok := d.leader(); return ok && d.reps[l].AppliedIndex() >= top }, 100_000) {
		t.Fatalf("the leader did not apply up to %d again", top)
	}
	d.checkSafety()
	missing, checked := d.ackedMissing(s.ops)
	if len(missing) > 0 || checked != ackedCount(s.ops) {
		t.Fatalf("lost %d of %d acknowledged (%d checked): %v", len(missing), ackedCount(s.ops), checked, missing[:min(5, len(missing))])
	}
	t.Logf("lost 0 of %d acknowledged (%d checked)", ackedCount(s.ops), checked)
	for _, id := range d.ids {
		d.reps[id].Close()
		stores[id].Close()
	}
}

// dirBytes is the size of the files in dir.
func dirBytes(t *testing.T, dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !fi.IsDir() {
			n += fi.Size()
		}
	}
	return n
}

// TestWALStorageCompactionRestart: three replicas in sync mode journal to
// WAL directories of 16 KiB segments and compact every 16 KiB of records.
// Over a long run each directory stays within a bound of a few segments
// and snapshots while the journal written is many times that; then every
// process is killed and restarted from its snapshot and the records after
// it, and every acknowledged operation is there: applied again at its
// index above the snapshots, and inside them the restored state equals
// the commands applied up to the same index.
func TestWALStorageCompactionRestart(t *testing.T) {
	const segBytes = 16 << 10
	root := t.TempDir()
	stores := map[rdma.NodeID]*WALStorage{}
	dirOf := func(id rdma.NodeID) string { return filepath.Join(root, fmt.Sprint(id)) }
	open := func(id rdma.NodeID) Storage {
		o := walOpts(dirOf(id))
		o.SegmentBytes = segBytes
		s, err := NewWALStorage(o)
		if err != nil {
			t.Fatal(err)
		}
		s.CompactBytes = segBytes
		stores[id] = s
		return s
	}
	d := newDurableClusterWith(t, 1, 3, DurabilitySync, nil, nil, open)
	s := newSwarm(t, d.cluster)
	s.fail = func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
	w := d.w
	var maxDir int64
	run := func(pred func() bool, virtualNs int64) bool {
		deadline := time.Now().Add(60 * time.Second)
		for k := 0; !pred() && time.Now().Before(deadline); k++ {
			w.RunFor(virtualNs)
			time.Sleep(20 * time.Microsecond)
			if k%64 == 0 {
				for _, id := range d.ids {
					maxDir = max(maxDir, dirBytes(t, dirOf(id)))
				}
			}
		}
		return pred()
	}
	if !run(func() bool { _, ok := d.leader(); return ok }, 100_000) {
		t.Fatal("no leader")
	}
	for i := 0; i < s.clients; i++ {
		s.issue(i)
	}
	journaled := func() (n uint64) {
		for _, id := range d.ids {
			n = max(n, d.reps[id].Stats().JournalRecords)
		}
		return n
	}
	// About 100 bytes a record: four times the bound below.
	if !run(func() bool { return journaled() >= 8_000 }, 10_000) {
		t.Fatalf("%d records journaled, %d acknowledged", journaled(), ackedCount(s.ops))
	}
	s.stopped = true
	// A segment being written, the spare, the segments of one compaction
	// interval and its snapshot, and one more of each while the next is
	// written.
	const bound = 8*segBytes + 64<<10
	for _, id := range d.ids {
		if n := stores[id].Snapshots(); n < 3 {
			t.Fatalf("node %d wrote %d snapshots", id, n)
		}
	}
	if maxDir > bound {
		t.Fatalf("a data directory reached %d bytes, above %d", maxDir, bound)
	}
	t.Logf("%d records journaled, %d acknowledged; largest data directory %d bytes (bound %d)", journaled(), ackedCount(s.ops), maxDir, bound)
	for _, id := range d.ids {
		w.Crash(id, false)
		stores[id].Close()
	}
	for _, id := range d.ids {
		w.Restart(id)
		if d.reps[id].stats.RestoredIndex == 0 || d.sms[id].base == 0 {
			t.Fatalf("node %d restored to %d from a snapshot at %d", id, d.reps[id].stats.RestoredIndex, d.sms[id].base)
		}
	}
	if !run(func() bool { _, ok := d.leader(); return ok }, 100_000) {
		t.Fatal("no leader after the restart")
	}
	var top Index
	for _, op := range s.ops {
		if op.acked {
			top = max(top, op.index)
		}
	}
	if !run(func() bool { l, ok := d.leader(); return ok && d.reps[l].AppliedIndex() >= top }, 100_000) {
		t.Fatalf("the leader did not apply up to %d again", top)
	}
	d.checkSafety()
	missing, checked := d.ackedMissing(s.ops)
	if len(missing) > 0 {
		t.Fatalf("lost %d of %d acknowledged: %v", len(missing), ackedCount(s.ops), missing[:min(5, len(missing))])
	}
	// Inside the snapshots: the state equals the commands applied, in
	// index order, up to the replica's applied index.
	d.checkStates(t)
	t.Logf("lost 0 of %d acknowledged (%d checked above the snapshots)", ackedCount(s.ops), checked)
	for _, id := range d.ids {
		d.reps[id].Close()
		stores[id].Close()
	}
}

// TestWALStorageCompact: after Compact(seq) a reload yields the snapshot
// as one record, then the records after seq; the directory keeps no
// segment wholly below it; a snapshot whose bytes changed is a damaged
// journal.
func TestWALStorageCompact(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	o := walOpts(dir)
	o.SegmentBytes = 4096
	s, err := NewWALStorage(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 500)
	for i := 1; i <= 40; i++ {
		rec[0] = byte(i)
		if _, err := s.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if !s.CompactDue() {
		t.Fatal("20 KB appended, 8 KB due: no compaction due")
	}
	if err := s.Compact(30, [][]byte{[]byte("state "), []byte("at 30")}); err != nil {
		t.Fatal(err)
	}
	if s.CompactDue() {
		t.Fatal("compaction still due right after one")
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	s.Close()
	if len(segs) > 3 {
		t.Fatalf("%d segments kept after compacting 30 of 40 records of 500 bytes into 4 KiB segments", len(segs))
	}
	s, _ = NewWALStorage(o)
	var got []string
	if err := s.Load(func(r []byte) error {
		if len(r) == 500 {
			got = append(got, fmt.Sprint(r[0]))
		} else {
			got = append(got, string(r))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if want := "[state at 30 31 32 33 34 35 36 37 38 39 40]"; fmt.Sprint(got) != want {
		t.Fatalf("reloaded %v, want %s", got, want)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "snap-*.snap"))
	if len(snaps) != 1 {
		t.Fatalf("snapshots %v", snaps)
	}
	b, _ := os.ReadFile(snaps[0])
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(snaps[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ = NewWALStorage(o)
	defer s.Close()
	if err := s.Load(func([]byte) error { return nil }); !journalDamaged(err) {
		t.Fatalf("Load with a damaged snapshot = %v, want a damaged journal", err)
	}
}
