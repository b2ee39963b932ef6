package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// smallOpts keeps segments small so rotation and scans are quick.
func smallOpts(dir string) Options {
	return Options{Dir: dir, Mode: ModeSync, Method: SyncFdatasync, SegmentBytes: 8192}
}

func payloadOf(i uint64) []byte {
	return []byte(fmt.Sprintf("entry-%d-%s", i, string(make([]byte, i%37))))
}

func mustOpen(t testing.TB, o Options) *WAL {
	t.Helper()
	w, err := Open(o)
	if err != nil {
		t.Fatalf("Open(%s): %v", o.Dir, err)
	}
	return w
}

// appendRange appends [from, to] and makes them durable.
func appendRange(t testing.TB, w *WAL, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := w.Append(i, payloadOf(i)); err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// replayAll returns every durable index, checking payloads.
func replayAll(t testing.TB, w *WAL, from uint64) []uint64 {
	t.Helper()
	var got []uint64
	err := w.Replay(from, func(i uint64, p []byte) error {
		if string(p) != string(payloadOf(i)) {
			return fmt.Errorf("index %d: payload %q, want %q", i, p, payloadOf(i))
		}
		got = append(got, i)
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return got
}

func checkConsecutive(t testing.TB, got []uint64, first, last uint64) {
	t.Helper()
	if last < first {
		if len(got) != 0 {
			t.Fatalf("replayed %d entries, want none", len(got))
		}
		return
	}
	if uint64(len(got)) != last-first+1 || got[0] != first || got[len(got)-1] != last {
		t.Fatalf("replayed %d entries %v..., want %d..%d", len(got), head(got), first, last)
	}
}

func head(s []uint64) []uint64 { return s[:min(len(s), 5)] }

func segmentPaths(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.path)
	}
	return out
}

// copyDir makes a fresh copy of a log directory for one crash case.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

func asCorruption(t testing.TB, err error) *CorruptionError {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T), want *CorruptionError", err, err)
	}
	return ce
}

// recordOffsets lists the byte offset of every record in a segment file.
func recordOffsets(t testing.TB, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := 0; ; {
		_, _, n, st := decodeRecord(data, off)
		if st != recordOK {
			return append(offs, off)
		}
		offs = append(offs, off)
		off += n
	}
}
