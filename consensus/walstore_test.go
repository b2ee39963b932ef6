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
