package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/rdmaconsensus/mu/wal"
)

// WALStorage is the Storage over a write-ahead log directory (package
// wal): each journal record is one WAL record, numbered as the WAL
// numbers them. Group commit, the sync method and preallocation are the
// WAL's (docs/durability.md measures them); sync mode wants
// wal.ModeSync, async mode wal.ModeAsync.
//
// A data directory that does not recover cleanly (a *wal.CorruptionError:
// a hole, a record that no longer verifies) is reported damaged; Reset
// then moves it aside, as <dir>.damaged.N, for inspection, and starts an
// empty one.
//
// It is a Compacter: once CompactBytes of records were appended since the
// last snapshot (and at least twice the last snapshot's size), the
// replica hands it a snapshot of its journal, which it streams into a
// wal snapshot file, and the segments it covers are deleted
// (docs/durability.md, "Compaction").
type WALStorage struct {
	// CompactBytes is how many bytes of records are appended between
	// snapshots: 0 is two segments, a negative value never compacts.
	// Set it before Load.
	CompactBytes int64

	opts wal.Options
	w    *wal.WAL

	cmu       sync.Mutex    // held by a Compact, and by Close
	since     atomic.Int64  // record bytes appended since the last snapshot
	snapBytes atomic.Int64  // size of the last snapshot
	snaps     atomic.Uint64 // snapshots written
}

// NewWALStorage checks opts and returns the storage; the directory is
// opened by Load (New calls it).
func NewWALStorage(opts wal.Options) (*WALStorage, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("%w: WAL directory is empty", ErrInvalidConfig)
	}
	if opts.Mode != wal.ModeAsync && opts.Mode != wal.ModeSync {
		return nil, fmt.Errorf("%w: WAL mode must be async or sync, got %v", ErrInvalidConfig, opts.Mode)
	}
	return &WALStorage{opts: opts}, nil
}

// walDamage marks a WAL recovery error as a damaged journal.
type walDamage struct{ err error }

func (e *walDamage) Error() string        { return e.err.Error() }
func (e *walDamage) Unwrap() error        { return e.err }
func (e *walDamage) JournalDamaged() bool { return true }

func damage(err error) error {
	var ce *wal.CorruptionError
	var se *wal.SnapshotCorruptError
	if errors.As(err, &ce) || errors.As(err, &se) {
		return &walDamage{err}
	}
	return err
}

// Load opens the directory and replays its records: the latest snapshot
// first, as one record, then the records after it.
func (s *WALStorage) Load(fn func(rec []byte) error) error {
	if s.w != nil {
		return errors.New("consensus: WALStorage loaded twice")
	}
	w, err := wal.Open(s.opts)
	if err != nil {
		return damage(err)
	}
	s.w = w
	from := w.FirstIndex()
	idx, path, ok, err := wal.LatestSnapshot(s.opts.Dir)
	if err != nil {
		return err
	}
	if ok {
		rd, err := wal.OpenSnapshot(path)
		if err != nil {
			return damage(err)
		}
		rec, err := io.ReadAll(rd) // the crc is checked at the end
		rd.Close()
		if err != nil {
			return damage(err)
		}
		s.snapBytes.Store(int64(len(rec)))
		if err := fn(rec); err != nil {
			return err
		}
		from = idx + 1
	}
	return damage(w.Replay(from, func(_ uint64, rec []byte) error {
		s.since.Add(int64(len(rec)) + wal.HeaderBytes)
		return fn(rec)
	}))
}

// CompactDue reports whether CompactBytes, and twice the last snapshot's
// size, were appended since the last snapshot.
func (s *WALStorage) CompactDue() bool {
	limit := s.CompactBytes
	if limit < 0 || s.w == nil {
		return false
	}
	if limit == 0 {
		limit = 2 * s.segmentBytes()
	}
	return s.since.Load() >= max(limit, 2*s.snapBytes.Load())
}

func (s *WALStorage) segmentBytes() int64 {
	if s.opts.SegmentBytes > 0 {
		return s.opts.SegmentBytes
	}
	return wal.DefaultSegmentBytes
}

// Compact waits until record seq is durable, streams parts into the
// snapshot file that stands for records 1..seq, commits it, and deletes
// the segments and older snapshots it covers.
func (s *WALStorage) Compact(seq uint64, parts [][]byte) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.w == nil {
		return errors.New("consensus: WALStorage closed")
	}
	since := s.since.Load()
	if err := s.w.WaitDurable(context.Background(), seq); err != nil {
		return err
	}
	sw, err := wal.CreateSnapshot(s.opts.Dir, seq)
	if err != nil {
		return err
	}
	var n int64
	for _, p := range parts {
		if _, err := sw.Write(p); err != nil {
			sw.Abort()
			return err
		}
		n += int64(len(p))
	}
	if _, err := sw.Commit(); err != nil {
		return err
	}
	if err := s.w.Compact(seq); err != nil {
		return err
	}
	s.since.Add(-since)
	s.snapBytes.Store(n)
	s.snaps.Add(1)
	return nil
}

// Snapshots is how many snapshots Compact wrote since Load.
func (s *WALStorage) Snapshots() uint64 { return s.snaps.Load() }

// Reset moves the directory aside and opens an empty one.
func (s *WALStorage) Reset() error {
	if s.w != nil {
		_ = s.w.Close()
		s.w = nil
	}
	if _, err := os.Stat(s.opts.Dir); err == nil {
		for n := 1; ; n++ {
			aside := fmt.Sprintf("%s.damaged.%d", s.opts.Dir, n)
			if _, err := os.Stat(aside); errors.Is(err, os.ErrNotExist) {
				if err := os.Rename(s.opts.Dir, aside); err != nil {
					return fmt.Errorf("consensus: move damaged WAL aside: %w", err)
				}
				break
			}
		}
	}
	w, err := wal.Open(s.opts)
	if err != nil {
		return err
	}
	s.w = w
	return nil
}

// Append adds rec. When the WAL's bound on what is not yet durable is
// reached it flushes at once rather than widen the loss window.
func (s *WALStorage) Append(rec []byte) (uint64, error) {
	if s.w == nil {
		return 0, errors.New("consensus: WALStorage used before Load")
	}
	idx := s.w.NextIndex()
	s.since.Add(int64(len(rec)) + wal.HeaderBytes)
	err := s.w.Append(idx, rec)
	if errors.Is(err, wal.ErrBacklogFull) {
		if err = s.w.Sync(); err == nil {
			err = s.w.Append(idx, rec)
		}
	}
	if err != nil {
		return 0, err
	}
	return idx, nil
}

// Durable is the WAL's durable index and its flusher's error.
func (s *WALStorage) Durable() (uint64, error) {
	if s.w == nil {
		return 0, errors.New("consensus: WALStorage used before Load")
	}
	return s.w.Durable(), s.w.Err()
}

// LossWindow is what the WAL holds appended but not yet durable.
func (s *WALStorage) LossWindow() wal.LossWindow {
	if s.w == nil {
		return wal.LossWindow{}
	}
	return s.w.LossWindow()
}

// Close waits for a Compact under way, then flushes and closes the WAL;
// call it after the replica's Close.
func (s *WALStorage) Close() error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	s.w = nil
	return err
}
