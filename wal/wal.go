package wal

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// WAL is an open write-ahead log. Append is meant for one goroutine (the
// replica's apply path); Durable, LossWindow and WaitDurable are safe from
// any goroutine.
type WAL struct {
	opts Options

	// mu guards the append side: the pending group and where its records
	// will land.
	mu          sync.Mutex
	pending     []byte
	bounds      []boundary
	spare       []byte
	spareBounds []boundary
	nextIndex   uint64
	segOffBytes int64 // -1: the next record opens a segment
	closed      bool

	// flushMu serializes flushes, rotation and compaction: the segment
	// side.
	flushMu  sync.Mutex
	seg      *segmentFile
	segs     []segmentInfo
	spareSeg chan spareResult // the next segment in preparation, or nil

	durable          atomic.Uint64
	appended         atomic.Uint64
	pendingOldestNs  atomic.Int64 // 0: nothing pending
	inflightOldestNs atomic.Int64 // 0: no flush in progress
	failed           atomic.Pointer[error]

	waitMu   sync.Mutex
	advanced chan struct{} // closed and replaced at each durable advance

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// boundary marks where, in a pending group, a record opens a new segment.
type boundary struct {
	offBytes   int
	firstIndex uint64
}

// LossWindow is what a total failure now would lose: entries appended but
// not durable, and the age of the oldest of them.
type LossWindow struct {
	Entries uint64
	AgeNs   int64
}

var epoch = time.Now()

// nowNs is monotonic and never 0, which stands for "none".
func nowNs() int64 { return int64(time.Since(epoch)) + 1 }

// Open recovers the log in opts.Dir (creating the directory if needed) and
// starts its flusher. Recovery errors are *CorruptionError when the log
// has a hole; a torn tail is cut silently, as it was never durable.
func Open(opts Options) (*WAL, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: create directory: %w", err)
	}
	if o.Method == SyncDirect {
		if err := probeDirect(o.Dir); err != nil {
			return nil, err
		}
	}
	if err := removeSnapshotTemps(o.Dir); err != nil {
		return nil, err
	}
	if err := removeStaleSpare(o.Dir); err != nil {
		return nil, err
	}
	snapIndex, _, haveSnap, err := LatestSnapshot(o.Dir)
	if err != nil {
		return nil, err
	}
	rec, err := recoverLog(o.Dir, o.SegmentBytes, o.PreallocZeros)
	if err != nil {
		return nil, err
	}
	next := snapIndex + 1
	if rec.lastIndex != 0 {
		covered := uint64(1)
		if haveSnap {
			covered = snapIndex + 1
		}
		if rec.firstIndex > covered {
			return nil, fmt.Errorf("wal: %s: log starts at index %d but entries from %d are in no snapshot", o.Dir, rec.firstIndex, covered)
		}
		if rec.lastIndex < snapIndex {
			return nil, fmt.Errorf("wal: %s: log ends at index %d, before the snapshot at %d", o.Dir, rec.lastIndex, snapIndex)
		}
		next = rec.lastIndex + 1
	}
	w := &WAL{
		opts:        o,
		nextIndex:   next,
		segOffBytes: -1,
		segs:        rec.segs,
		advanced:    make(chan struct{}),
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	if rec.lastIndex != 0 {
		last := rec.segs[len(rec.segs)-1]
		seg, err := openSegment(last.path, last.firstIndex, rec.capBytes, rec.endOffBytes, rec.tail, o.Method)
		if err != nil {
			return nil, err
		}
		// What recovery read may sit only in the page cache of a process
		// that died; make it durable before reporting it so.
		if err := fdatasync(seg.f); err != nil {
			seg.close()
			return nil, fmt.Errorf("wal: fdatasync %s: %w", last.path, err)
		}
		w.seg = seg
		w.segOffBytes = rec.endOffBytes
	}
	w.durable.Store(next - 1)
	w.appended.Store(next - 1)
	w.prepareSpare()
	go w.flushLoop()
	return w, nil
}

// FirstIndex is the lowest index still in the segments (after a
// compaction, the rest is in the snapshot); NextIndex when there is none.
func (w *WAL) FirstIndex() uint64 {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if len(w.segs) == 0 {
		return w.NextIndex()
	}
	return w.segs[0].firstIndex
}

// NextIndex is the index the next Append must carry.
func (w *WAL) NextIndex() uint64 { return w.appended.Load() + 1 }

// Durable is the highest index that is on stable storage.
func (w *WAL) Durable() uint64 { return w.durable.Load() }

// Err is the flusher's error, nil while it works: a write or sync failed
// (a full or read-only disk, a device error), and nothing appended since
// will become durable.
func (w *WAL) Err() error {
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Append adds the committed entry at index, which must follow the last
// one. It copies payload into the pending group and does not wait for the
// disk; ErrBacklogFull says the not-yet-durable bound is reached.
func (w *WAL) Append(index uint64, payload []byte) error {
	recBytes := int64(HeaderBytes + len(payload))
	if recBytes > w.opts.SegmentBytes {
		return &RecordTooLargeError{RecordBytes: recBytes, SegmentBytes: w.opts.SegmentBytes}
	}
	if p := w.failed.Load(); p != nil {
		return *p
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if index != w.nextIndex {
		w.mu.Unlock()
		return &SequenceError{WantIndex: w.nextIndex, GotIndex: index}
	}
	// A lone record may exceed MaxPendingBytes; it still goes alone.
	if index-1-w.durable.Load() >= w.opts.MaxPendingEntries ||
		(len(w.pending) > 0 && len(w.pending)+int(recBytes) > w.opts.MaxPendingBytes) {
		w.mu.Unlock()
		return ErrBacklogFull
	}
	if w.segOffBytes < 0 || w.segOffBytes+recBytes > w.opts.SegmentBytes {
		w.bounds = append(w.bounds, boundary{offBytes: len(w.pending), firstIndex: index})
		w.segOffBytes = 0
	}
	w.segOffBytes += recBytes
	if len(w.pending) == 0 {
		w.pendingOldestNs.Store(nowNs())
	}
	w.pending = appendRecord(w.pending, index, payload)
	w.nextIndex = index + 1
	w.appended.Store(index)
	kick := w.opts.Mode == ModeSync || len(w.pending) >= w.opts.MaxPendingBytes/2 ||
		index-w.durable.Load() >= w.opts.MaxPendingEntries/2
	w.mu.Unlock()
	if kick {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// LossWindow reports what is appended but not yet durable.
func (w *WAL) LossWindow() LossWindow {
	d, a := w.durable.Load(), w.appended.Load()
	if a <= d {
		return LossWindow{}
	}
	oldest := w.inflightOldestNs.Load()
	if oldest == 0 {
		oldest = w.pendingOldestNs.Load()
	}
	var age int64
	if oldest != 0 {
		age = max(nowNs()-oldest, 0)
	}
	return LossWindow{Entries: a - d, AgeNs: age}
}

// WaitDurable returns once Durable() >= index, or the flusher's error, or
// the context's.
func (w *WAL) WaitDurable(ctx context.Context, index uint64) error {
	for {
		if w.durable.Load() >= index {
			return nil
		}
		w.waitMu.Lock()
		ch := w.advanced
		w.waitMu.Unlock()
		if w.durable.Load() >= index {
			return nil
		}
		if p := w.failed.Load(); p != nil {
			return *p
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wal: waiting for index %d to be durable (durable %d): %w", index, w.durable.Load(), ctx.Err())
		}
	}
}

// Sync writes and makes durable everything appended so far.
func (w *WAL) Sync() error { return w.flush() }

// Close flushes what is pending, stops the flusher and closes the files.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	err := w.flush()
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if serr := w.dropSpare(); err == nil {
		err = serr
	}
	if w.seg != nil {
		if cerr := w.seg.close(); err == nil {
			err = cerr
		}
		w.seg = nil
	}
	return err
}

func (w *WAL) flushLoop() {
	defer close(w.done)
	var tick <-chan time.Time
	if w.opts.Mode == ModeAsync {
		t := time.NewTicker(time.Duration(w.opts.FlushIntervalNs))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-tick:
		}
		if w.flush() != nil {
			return // sticky: Append and WaitDurable report it
		}
	}
}

// flush takes the pending group, writes it, makes it durable, then
// publishes its last index. A write or sync error is sticky: after a
// failed fsync the kernel may have dropped the dirty pages, so retrying
// could report as durable what is not.
func (w *WAL) flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if p := w.failed.Load(); p != nil {
		return *p
	}
	w.mu.Lock()
	if len(w.pending) == 0 {
		w.mu.Unlock()
		return nil
	}
	batch, bounds := w.pending, w.bounds
	w.pending, w.bounds = w.spare[:0], w.spareBounds[:0]
	w.spare, w.spareBounds = batch, bounds
	last := w.nextIndex - 1
	w.inflightOldestNs.Store(w.pendingOldestNs.Load())
	w.pendingOldestNs.Store(0)
	w.mu.Unlock()

	prev := w.durable.Load()
	t0 := nowNs()
	if err := w.writeGroup(batch, bounds); err != nil {
		w.failed.Store(&err)
		w.broadcast()
		return err
	}
	w.durable.Store(last)
	w.inflightOldestNs.Store(0)
	w.broadcast()
	if w.opts.OnGroupDurable != nil {
		w.opts.OnGroupDurable(last-prev, len(batch), nowNs()-t0)
	}
	return nil
}

// writeGroup writes a group, opening segments at its boundaries; a full
// segment is made durable before the next one receives data, so recovery
// never sees valid data after a torn segment end.
func (w *WAL) writeGroup(batch []byte, bounds []boundary) error {
	pos := 0
	for _, b := range bounds {
		if w.seg != nil {
			if err := w.seg.write(batch[pos:b.offBytes]); err != nil {
				return err
			}
			if err := w.seg.sync(); err != nil {
				return err
			}
			if err := w.seg.close(); err != nil {
				return err
			}
			w.seg = nil
		}
		path, err := w.newSegment(b.firstIndex)
		if err != nil {
			return err
		}
		seg, err := openSegment(path, b.firstIndex, w.opts.SegmentBytes, 0, nil, w.opts.Method)
		if err != nil {
			return err
		}
		w.seg = seg
		w.segs = append(w.segs, segmentInfo{path: path, firstIndex: b.firstIndex})
		pos = b.offBytes
	}
	if err := w.seg.write(batch[pos:]); err != nil {
		return err
	}
	return w.seg.sync()
}

func (w *WAL) broadcast() {
	w.waitMu.Lock()
	close(w.advanced)
	w.advanced = make(chan struct{})
	w.waitMu.Unlock()
}
