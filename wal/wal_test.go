package wal

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestRoundTripEveryMethod(t *testing.T) {
	for _, m := range []SyncMethod{SyncFdatasync, SyncDsync, SyncDirect} {
		t.Run(m.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := smallOpts(dir)
			o.Method = m
			w, err := Open(o)
			if errors.Is(err, ErrDirectUnsupported) {
				t.Skipf("%s: %v", dir, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			// Many small groups: O_DIRECT rewrites the partial last block
			// each time and must keep what it held.
			for i := uint64(1); i <= 300; i += 7 {
				appendRange(t, w, i, i+6)
				if w.Durable() != i+6 {
					t.Fatalf("Durable %d after Sync, want %d", w.Durable(), i+6)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w = mustOpen(t, o)
			checkConsecutive(t, replayAll(t, w, 1), 1, AppendedTo(w))
			appendRange(t, w, w.NextIndex(), w.NextIndex()+50)
			last := w.NextIndex() - 1
			w.Close()
			w = mustOpen(t, o)
			defer w.Close()
			checkConsecutive(t, replayAll(t, w, 1), 1, last)
		})
	}
}

func AppendedTo(w *WAL) uint64 { return w.NextIndex() - 1 }

func TestAppendChecks(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(dir)
	o.Mode = ModeAsync
	o.FlushIntervalNs = int64(time.Hour)
	o.MaxPendingEntries = 10
	w := mustOpen(t, o)
	defer w.Close()
	var se *SequenceError
	if err := w.Append(2, nil); !errors.As(err, &se) || se.WantIndex != 1 {
		t.Fatalf("Append(2) on an empty log: %v", err)
	}
	var tl *RecordTooLargeError
	if err := w.Append(1, make([]byte, o.SegmentBytes)); !errors.As(err, &tl) {
		t.Fatalf("oversized Append: %v", err)
	}
	for i := uint64(1); i <= 10; i++ {
		if err := w.Append(i, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Append(11, []byte("x")); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("Append beyond MaxPendingEntries: %v, want ErrBacklogFull", err)
	}
	if lw := w.LossWindow(); lw.Entries != 10 || lw.AgeNs <= 0 {
		t.Fatalf("LossWindow %+v, want 10 entries and a positive age", lw)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if lw := w.LossWindow(); lw != (LossWindow{}) {
		t.Fatalf("LossWindow after Sync %+v, want zero", lw)
	}
	if err := w.Append(11, []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsMemoryMode(t *testing.T) {
	if _, err := Open(Options{Dir: t.TempDir(), Mode: ModeMemory}); err == nil {
		t.Fatal("Open in ModeMemory succeeded")
	}
	for _, s := range []string{"memory", "async", "sync"} {
		if m, err := ParseMode(s); err != nil || m.String() != s {
			t.Fatalf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseSyncMethod("fsync"); err == nil {
		t.Fatal("ParseSyncMethod accepted fsync")
	}
}

// TestAsyncFlushesInBackground: without Sync, the flusher makes entries
// durable within its interval.
func TestAsyncFlushesInBackground(t *testing.T) {
	o := smallOpts(t.TempDir())
	o.Mode = ModeAsync
	o.FlushIntervalNs = int64(time.Millisecond)
	w := mustOpen(t, o)
	defer w.Close()
	for i := uint64(1); i <= 50; i++ {
		if err := w.Append(i, payloadOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WaitDurable(ctx, 50); err != nil {
		t.Fatal(err)
	}
}

func TestOnGroupDurable(t *testing.T) {
	o := smallOpts(t.TempDir())
	var entries uint64
	var groups int
	o.Mode = ModeAsync
	o.FlushIntervalNs = int64(time.Hour)
	o.OnGroupDurable = func(n uint64, groupBytes int, latencyNs int64) {
		if groupBytes <= 0 || latencyNs <= 0 {
			t.Errorf("group of %d bytes took %d ns", groupBytes, latencyNs)
		}
		entries += n
		groups++
	}
	w := mustOpen(t, o)
	appendRange(t, w, 1, 10)
	appendRange(t, w, 11, 12)
	w.Close()
	if entries != 12 || groups != 2 {
		t.Fatalf("%d entries in %d groups, want 12 in 2", entries, groups)
	}
}

func TestWaitDurableContext(t *testing.T) {
	w := mustOpen(t, smallOpts(t.TempDir()))
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.WaitDurable(ctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitDurable for an index never appended: %v", err)
	}
}

// TestConcurrent runs the apply path, explicit syncs, waiters and readers
// of Durable and LossWindow together (meant for -race).
func TestConcurrent(t *testing.T) {
	w := mustOpen(t, smallOpts(t.TempDir()))
	const n = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(1); i <= n; i++ {
			for {
				err := w.Append(i, payloadOf(i))
				if err == nil {
					break
				}
				if !errors.Is(err, ErrBacklogFull) {
					errs <- err
					return
				}
				w.WaitDurable(ctx, i-1)
			}
		}
	}()
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for last < n {
				d := w.Durable()
				if d < last {
					errs <- errors.New("Durable went backwards")
					return
				}
				last = d
				_ = w.LossWindow()
				if err := w.WaitDurable(ctx, min(d+10, n)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for w.Durable() < n {
			if err := w.Sync(); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, smallOpts(w.opts.Dir))
	defer w.Close()
	checkConsecutive(t, replayAll(t, w, 1), 1, n)
}

// TestAppendDoesNotAllocate: in steady state the pending group reuses its
// buffers.
func TestAppendDoesNotAllocate(t *testing.T) {
	o := smallOpts(t.TempDir())
	o.Mode = ModeAsync
	o.FlushIntervalNs = int64(time.Hour)
	o.SegmentBytes = 1 << 20
	w := mustOpen(t, o)
	defer w.Close()
	payload := make([]byte, 100)
	next := uint64(1)
	for round := 0; round < 3; round++ {
		for range 200 {
			w.Append(next, payload)
			next++
		}
		w.Sync()
	}
	allocs := testing.AllocsPerRun(150, func() {
		if err := w.Append(next, payload); err != nil {
			t.Fatal(err)
		}
		next++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Append, want 0", allocs)
	}
}

// TestWriteErrorIsSticky: once a write or sync fails, nothing more is
// reported durable and every caller sees the error.
func TestWriteErrorIsSticky(t *testing.T) {
	w := mustOpen(t, smallOpts(t.TempDir()))
	appendRange(t, w, 1, 3)
	w.flushMu.Lock()
	w.seg.f.Close() // the disk goes away under the log
	w.flushMu.Unlock()
	if err := w.Append(4, []byte("x")); err != nil {
		t.Fatalf("Append before the failure is seen: %v", err)
	}
	err := w.Sync()
	if err == nil {
		t.Fatal("Sync on a closed file succeeded")
	}
	if w.Durable() != 3 {
		t.Fatalf("Durable %d after a failed flush, want 3", w.Durable())
	}
	if err2 := w.Append(5, []byte("x")); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("Append after the failure: %v, want %v", err2, err)
	}
	if err2 := w.WaitDurable(context.Background(), 4); err2 == nil {
		t.Fatal("WaitDurable after the failure returned nil")
	}
	if err2 := w.Close(); err2 == nil {
		t.Fatal("Close after the failure returned nil")
	}
}
