package wal

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeSnapshot streams size pseudo-random bytes in uneven pieces.
func writeSnapshot(t *testing.T, dir string, index uint64, size int) ([]byte, string) {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(index, 1))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	sw, err := CreateSnapshot(dir, index)
	if err != nil {
		t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1+r.IntN(300_000))
		if _, err := sw.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	path, err := sw.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return data, path
}

func TestSnapshotRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want, path := writeSnapshot(t, dir, 77, 5<<20+13) // beyond the 1 MiB catch-up cap
	r, err := OpenSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Index() != 77 || !bytes.Equal(got, want) {
		t.Fatalf("index %d, %d bytes read, want 77 and %d bytes", r.Index(), len(got), len(want))
	}
	if idx, p, ok, err := LatestSnapshot(dir); err != nil || !ok || idx != 77 || p != path {
		t.Fatalf("LatestSnapshot = %d %s %v %v", idx, p, ok, err)
	}
}

func TestSnapshotCRCMismatch(t *testing.T) {
	dir := t.TempDir()
	_, path := writeSnapshot(t, dir, 5, 100_000)
	data, _ := os.ReadFile(path)
	data[snapshotHeaderBytes+50_000] ^= 1
	os.WriteFile(path, data, 0o644)
	r, err := OpenSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = io.ReadAll(r)
	var sc *SnapshotCorruptError
	if !errors.As(err, &sc) || sc.File != path {
		t.Fatalf("reading a flipped snapshot: %v, want *SnapshotCorruptError naming %s", err, path)
	}
}

func TestSnapshotTruncated(t *testing.T) {
	dir := t.TempDir()
	_, path := writeSnapshot(t, dir, 5, 10_000)
	os.Truncate(path, 9_000)
	var sc *SnapshotCorruptError
	if _, err := OpenSnapshot(path); !errors.As(err, &sc) {
		t.Fatalf("truncated snapshot: %v, want *SnapshotCorruptError", err)
	}
}

// TestSnapshotAbortAndCrash: an aborted or unfinished snapshot is never
// seen as one, and Open clears what a crash left.
func TestSnapshotAbortAndCrash(t *testing.T) {
	dir := t.TempDir()
	sw, err := CreateSnapshot(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	sw.Write([]byte("partial"))
	sw.Abort()
	sw, _ = CreateSnapshot(dir, 4)
	sw.Write([]byte("left by a crash"))
	sw.bw.Flush()
	if _, _, ok, _ := LatestSnapshot(dir); ok {
		t.Fatal("an uncommitted snapshot is visible")
	}
	w := mustOpen(t, smallOpts(dir))
	defer w.Close()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if filepath.Ext(e.Name()) == snapshotTempSuffix {
			t.Fatalf("Open left %s", e.Name())
		}
	}
}

func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(dir)
	o.SegmentBytes = 4096
	w := mustOpen(t, o)
	appendRange(t, w, 1, 1000)
	before := len(segmentPaths(t, dir))
	if err := w.Compact(600); err == nil {
		t.Fatal("Compact without a snapshot succeeded")
	}
	writeSnapshot(t, dir, 300, 1000)
	writeSnapshot(t, dir, 600, 1000)
	if err := w.Compact(600); err != nil {
		t.Fatal(err)
	}
	first := w.FirstIndex()
	if first > 601 || first < 500 || len(segmentPaths(t, dir)) >= before {
		t.Fatalf("after Compact(600): FirstIndex %d, %d of %d segments left", first, len(segmentPaths(t, dir)), before)
	}
	if idx, _, _, _ := LatestSnapshot(dir); idx != 600 {
		t.Fatalf("latest snapshot %d, want 600", idx)
	}
	if _, err := os.Stat(filepath.Join(dir, snapshotName(300))); !os.IsNotExist(err) {
		t.Fatalf("older snapshot still there: %v", err)
	}
	checkConsecutive(t, replayAll(t, w, first), first, 1000)
	appendRange(t, w, 1001, 1100)
	w.Close()
	w = mustOpen(t, o)
	defer w.Close()
	checkConsecutive(t, replayAll(t, w, 601), 601, 1100)
}

// TestLogBeyondSnapshot: segments that start past the snapshot leave
// entries nobody holds; Open refuses.
func TestLogBeyondSnapshot(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(dir)
	o.SegmentBytes = 4096
	w := mustOpen(t, o)
	appendRange(t, w, 1, 500)
	writeSnapshot(t, dir, 450, 10)
	w.Compact(450)
	w.Close()
	os.Remove(filepath.Join(dir, snapshotName(450)))
	writeSnapshot(t, dir, 100, 10)
	if _, err := Open(o); err == nil {
		t.Fatal("Open accepted a log that starts past its snapshot")
	}
}
