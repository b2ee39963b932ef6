package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// The next segment is preallocated in the background under this name and
// renamed when the log rotates into it, so a rotation costs a rename, not
// a fallocate or a zero-fill on the commit path.
const spareName = "next.wal-spare"

type spareResult struct {
	path string
	err  error
}

// prepareSpare starts making the next segment. Called with flushMu held.
func (w *WAL) prepareSpare() {
	ch := make(chan spareResult, 1)
	w.spareSeg = ch
	dir, size, zeros := w.opts.Dir, w.opts.SegmentBytes, w.opts.PreallocZeros
	go func() {
		path := filepath.Join(dir, spareName)
		ch <- spareResult{path: path, err: makeSpare(path, size, zeros)}
	}()
}

// waitSpare waits for a spare in preparation and returns it ("" when none
// or it failed). Called with flushMu held.
func (w *WAL) waitSpare() string {
	if w.spareSeg == nil {
		return ""
	}
	r := <-w.spareSeg
	w.spareSeg = nil
	if r.err != nil {
		return ""
	}
	return r.path
}

func makeSpare(path string, size int64, zeros bool) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = preallocate(f, 0, size, zeros)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// newSegment makes the segment that starts at firstIndex from the spare
// when one is ready, else directly; then starts the next spare.
func (w *WAL) newSegment(firstIndex uint64) (string, error) {
	final := filepath.Join(w.opts.Dir, segmentName(firstIndex))
	spare := w.waitSpare()
	defer w.prepareSpare()
	if spare != "" {
		if err := os.Rename(spare, final); err == nil {
			return final, syncDir(w.opts.Dir)
		}
	}
	return createSegment(w.opts.Dir, firstIndex, w.opts.SegmentBytes, w.opts.PreallocZeros)
}

// dropSpare removes the spare after waiting for its preparation.
func (w *WAL) dropSpare() error {
	if path := w.waitSpare(); path != "" {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("wal: remove spare segment: %w", err)
		}
	}
	return nil
}

// removeStaleSpare clears a spare left by a crash; it holds no records.
func removeStaleSpare(dir string) error {
	err := os.Remove(filepath.Join(dir, spareName))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("wal: remove stale spare segment: %w", err)
	}
	return nil
}
