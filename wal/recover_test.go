package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeLog makes a closed log of entries 1..n in dir.
func writeLog(t *testing.T, o Options, n uint64) {
	t.Helper()
	w := mustOpen(t, o)
	appendRange(t, w, 1, n)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashAtEveryOffset cuts the only segment at every byte of its last
// three records, as a crash mid-write would, and checks that recovery keeps
// exactly the records that were whole and that the log then carries on.
func TestCrashAtEveryOffset(t *testing.T) {
	const n = 40
	base := t.TempDir()
	src := filepath.Join(base, "src")
	writeLog(t, smallOpts(src), n)
	segs := segmentPaths(t, src)
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1 (grow SegmentBytes)", len(segs))
	}
	offs := recordOffsets(t, segs[0])
	if len(offs) != n+1 {
		t.Fatalf("%d record offsets, want %d", len(offs), n+1)
	}
	for cut := offs[n-3]; cut <= offs[n]; cut++ {
		dir := filepath.Join(base, "cut")
		os.RemoveAll(dir)
		copyDir(t, src, dir)
		path := filepath.Join(dir, filepath.Base(segs[0]))
		if err := os.Truncate(path, int64(cut)); err != nil {
			t.Fatal(err)
		}
		var whole uint64
		for j := range offs {
			if offs[j] <= cut {
				whole = uint64(j)
			}
		}
		w, err := Open(smallOpts(dir))
		if err != nil {
			t.Fatalf("cut at byte %d: Open: %v", cut, err)
		}
		checkConsecutive(t, replayAll(t, w, 1), 1, whole)
		if w.Durable() != whole || w.NextIndex() != whole+1 {
			t.Fatalf("cut at byte %d: Durable %d NextIndex %d, want %d and %d", cut, w.Durable(), w.NextIndex(), whole, whole+1)
		}
		appendRange(t, w, whole+1, n+2)
		w.Close()
		w = mustOpen(t, smallOpts(dir))
		checkConsecutive(t, replayAll(t, w, 1), 1, n+2)
		w.Close()
	}
}

// TestGarbageTail: a torn write that left junk, not zeros, after the last
// whole record is cut off too.
func TestGarbageTail(t *testing.T) {
	const n = 20
	base := t.TempDir()
	src := filepath.Join(base, "src")
	writeLog(t, smallOpts(src), n)
	seg := segmentPaths(t, src)[0]
	offs := recordOffsets(t, seg)
	for _, cut := range []int{offs[n-1], offs[n-1] + 3, offs[n-1] + HeaderBytes + 1, offs[n]} {
		dir := filepath.Join(base, "g")
		os.RemoveAll(dir)
		copyDir(t, src, dir)
		f, err := os.OpenFile(filepath.Join(dir, filepath.Base(seg)), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xab}, 300), int64(cut)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		w, err := Open(smallOpts(dir))
		if err != nil {
			t.Fatalf("junk from byte %d: %v", cut, err)
		}
		want := uint64(n - 1)
		if cut >= offs[n] {
			want = n
		}
		checkConsecutive(t, replayAll(t, w, 1), 1, want)
		w.Close()
		data, _ := os.ReadFile(filepath.Join(dir, filepath.Base(seg)))
		if !allZero(data[offs[want]:]) {
			t.Fatalf("junk from byte %d: the tail was not cleared", cut)
		}
	}
}

// TestCorruptionInTheMiddle flips every byte of a record that has valid
// records after it: Open must name the file and the record's offset.
func TestCorruptionInTheMiddle(t *testing.T) {
	const n, bad = 20, 10
	base := t.TempDir()
	src := filepath.Join(base, "src")
	writeLog(t, smallOpts(src), n)
	seg := segmentPaths(t, src)[0]
	offs := recordOffsets(t, seg)
	for at := offs[bad-1]; at < offs[bad]; at++ {
		dir := filepath.Join(base, "flip")
		os.RemoveAll(dir)
		copyDir(t, src, dir)
		path := filepath.Join(dir, filepath.Base(seg))
		data, _ := os.ReadFile(path)
		data[at] ^= 0x40
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(smallOpts(dir))
		ce := asCorruption(t, err)
		if ce.File != path || ce.OffsetBytes != int64(offs[bad-1]) {
			t.Fatalf("flip at byte %d: error names %s at %d, want %s at %d", at, ce.File, ce.OffsetBytes, path, offs[bad-1])
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("error %q does not name the file", err)
		}
	}
}

// TestZeroedMiddleRecord: a record lost to zeros (a sector never written)
// with records after it is a hole, not a clean end.
func TestZeroedMiddleRecord(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, smallOpts(dir), 10)
	seg := segmentPaths(t, dir)[0]
	offs := recordOffsets(t, seg)
	data, _ := os.ReadFile(seg)
	clear(data[offs[4]:offs[5]])
	os.WriteFile(seg, data, 0o644)
	_, err := Open(smallOpts(dir))
	if ce := asCorruption(t, err); ce.OffsetBytes != int64(offs[4]) {
		t.Fatalf("offset %d, want %d", ce.OffsetBytes, offs[4])
	}
}

// TestPreallocatedZeroTail: segments are full size on disk and their
// unwritten rest reads as zeros, which recovery takes as the clean end.
func TestPreallocatedZeroTail(t *testing.T) {
	for _, zeros := range []bool{false, true} {
		dir := t.TempDir()
		o := smallOpts(dir)
		o.PreallocZeros = zeros
		writeLog(t, o, 5)
		seg := segmentPaths(t, dir)[0]
		st, err := os.Stat(seg)
		if err != nil || st.Size() != o.SegmentBytes {
			t.Fatalf("PreallocZeros=%v: segment size %d, want %d (%v)", zeros, st.Size(), o.SegmentBytes, err)
		}
		data, _ := os.ReadFile(seg)
		if end := recordOffsets(t, seg)[5]; !allZero(data[end:]) {
			t.Fatalf("PreallocZeros=%v: tail not zero", zeros)
		}
		w := mustOpen(t, o)
		checkConsecutive(t, replayAll(t, w, 1), 1, 5)
		w.Close()
	}
}

// TestRotation writes across many segments, each named by its first index.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(dir)
	o.SegmentBytes = 4096
	w := mustOpen(t, o)
	const n = 2000
	for i := uint64(1); i <= n; i += 100 {
		appendRange(t, w, i, i+99)
	}
	w.Close()
	if _, err := os.Stat(filepath.Join(dir, spareName)); !os.IsNotExist(err) {
		t.Fatalf("Close left the spare segment: %v", err)
	}
	segs, _ := listSegments(dir)
	if len(segs) < 20 {
		t.Fatalf("%d segments, want many", len(segs))
	}
	w = mustOpen(t, o)
	defer w.Close()
	checkConsecutive(t, replayAll(t, w, 1), 1, n)
	checkConsecutive(t, replayAll(t, w, 1500), 1500, n)
	if w.FirstIndex() != 1 || w.NextIndex() != n+1 {
		t.Fatalf("FirstIndex %d NextIndex %d", w.FirstIndex(), w.NextIndex())
	}
}

// TestMissingSegment: a segment deleted from the middle is a hole.
func TestMissingSegment(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(dir)
	o.SegmentBytes = 4096
	writeLog(t, o, 500)
	segs := segmentPaths(t, dir)
	os.Remove(segs[2])
	_, err := Open(o)
	if ce := asCorruption(t, err); ce.File != segs[3] {
		t.Fatalf("error names %s, want %s", ce.File, segs[3])
	}
}

// TestEmptyLastSegment: a crash right after a rotation leaves the new
// segment empty (and perhaps a spare); recovery drops both and appending
// resumes.
func TestEmptyLastSegment(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(dir)
	writeLog(t, o, 3)
	if _, err := createSegment(dir, 4, o.SegmentBytes, false); err != nil {
		t.Fatal(err)
	}
	if err := makeSpare(filepath.Join(dir, spareName), o.SegmentBytes, false); err != nil {
		t.Fatal(err)
	}
	w := mustOpen(t, o)
	defer w.Close()
	if len(segmentPaths(t, dir)) != 1 || w.NextIndex() != 4 {
		t.Fatalf("segments %v NextIndex %d", segmentPaths(t, dir), w.NextIndex())
	}
	appendRange(t, w, 4, 10)
}
