package consensus

import (
	"errors"
	"fmt"
	"os"

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
type WALStorage struct {
	opts wal.Options
	w    *wal.WAL
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
	if errors.As(err, &ce) {
		return &walDamage{err}
	}
	return err
}

// Load opens the directory and replays its records.
func (s *WALStorage) Load(fn func(rec []byte) error) error {
	if s.w != nil {
		return errors.New("consensus: WALStorage loaded twice")
	}
	w, err := wal.Open(s.opts)
	if err != nil {
		return damage(err)
	}
	s.w = w
	return damage(w.Replay(w.FirstIndex(), func(_ uint64, rec []byte) error { return fn(rec) }))
}

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

// Close flushes and closes the WAL; call it after the replica's Close.
func (s *WALStorage) Close() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	s.w = nil
	return err
}
