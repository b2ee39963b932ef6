package wal

import (
	"errors"
	"fmt"
)

// CorruptionError is a record that does not verify with valid data after
// it: losing it would leave a hole in the committed sequence, so recovery
// refuses rather than skipping it.
type CorruptionError struct {
	File        string
	OffsetBytes int64
	Reason      string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: corrupt record in %s at byte %d: %s", e.File, e.OffsetBytes, e.Reason)
}

// SequenceError is an Append whose index does not follow the last one.
type SequenceError struct {
	WantIndex uint64
	GotIndex  uint64
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("wal: append of index %d, want %d (indexes must be consecutive)", e.GotIndex, e.WantIndex)
}

// RecordTooLargeError is a payload that cannot fit in one segment.
type RecordTooLargeError struct {
	RecordBytes  int64
	SegmentBytes int64
}

func (e *RecordTooLargeError) Error() string {
	return fmt.Sprintf("wal: record of %d bytes does not fit in a segment of %d bytes", e.RecordBytes, e.SegmentBytes)
}

// SnapshotCorruptError is a snapshot file whose contents do not verify.
type SnapshotCorruptError struct {
	File   string
	Reason string
}

func (e *SnapshotCorruptError) Error() string {
	return fmt.Sprintf("wal: corrupt snapshot %s: %s", e.File, e.Reason)
}

// ErrDirectUnsupported is wrapped by Open when the filesystem refuses
// O_DIRECT (tmpfs, some overlay and network filesystems).
var ErrDirectUnsupported = errors.New("filesystem refuses O_DIRECT; use SyncFdatasync or SyncDsync")

// ErrBacklogFull is returned by Append when the entries or bytes not yet
// durable reach the configured bound; the caller holds back until the
// flusher catches up (WaitDurable) rather than widen the loss window.
var ErrBacklogFull = errors.New("wal: backlog full: entries not yet durable reached MaxPendingEntries or MaxPendingBytes")

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("wal: closed")
