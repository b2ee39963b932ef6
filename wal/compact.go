package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// Compact deletes the segments whose records all lie at or below
// snapshotIndex, and older snapshots; the snapshot at snapshotIndex must
// be committed. The segment being appended to is kept.
func (w *WAL) Compact(snapshotIndex uint64) error {
	if _, err := os.Stat(filepath.Join(w.opts.Dir, snapshotName(snapshotIndex))); err != nil {
		return fmt.Errorf("wal: compact to %d: no committed snapshot there: %w", snapshotIndex, err)
	}
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	drop := 0
	for drop+1 < len(w.segs) && w.segs[drop+1].firstIndex-1 <= snapshotIndex {
		drop++
	}
	for _, s := range w.segs[:drop] {
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("wal: compact: %w", err)
		}
	}
	w.segs = append(w.segs[:0], w.segs[drop:]...)
	if err := removeSnapshotsBelow(w.opts.Dir, snapshotIndex); err != nil {
		return err
	}
	return syncDir(w.opts.Dir)
}
