package wal

import (
	"errors"
	"fmt"
)

// Mode is how a replica group persists committed entries.
type Mode int

const (
	// ModeMemory keeps no WAL (Mu's design): a total failure loses the log.
	ModeMemory Mode = iota
	// ModeAsync persists in the background; what is lost on a total failure
	// is bounded by MaxPendingEntries and FlushIntervalNs and reported live
	// by LossWindow.
	ModeAsync
	// ModeSync flushes as soon as entries arrive; callers acknowledge only
	// after WaitDurable.
	ModeSync
)

func (m Mode) String() string {
	switch m {
	case ModeMemory:
		return "memory"
	case ModeAsync:
		return "async"
	case ModeSync:
		return "sync"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads "memory", "async" or "sync".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{ModeMemory, ModeAsync, ModeSync} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("wal: unknown durability mode %q (want memory, async or sync)", s)
}

// SyncMethod is how a flush makes written bytes durable.
type SyncMethod int

const (
	// SyncFdatasync writes through the page cache, then fdatasync(2).
	SyncFdatasync SyncMethod = iota
	// SyncDsync opens segments O_DSYNC: each write returns once durable.
	SyncDsync
	// SyncDirect opens segments O_DIRECT|O_DSYNC and writes whole aligned
	// blocks from aligned buffers, bypassing the page cache.
	SyncDirect
)

func (s SyncMethod) String() string {
	switch s {
	case SyncFdatasync:
		return "fdatasync"
	case SyncDsync:
		return "dsync"
	case SyncDirect:
		return "direct"
	}
	return fmt.Sprintf("SyncMethod(%d)", int(s))
}

// ParseSyncMethod reads "fdatasync", "dsync" or "direct".
func ParseSyncMethod(s string) (SyncMethod, error) {
	for _, m := range []SyncMethod{SyncFdatasync, SyncDsync, SyncDirect} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("wal: unknown sync method %q (want fdatasync, dsync or direct)", s)
}

// Defaults of a zero Options field.
const (
	DefaultSegmentBytes      = 64 << 20
	DefaultFlushIntervalNs   = 1_000_000
	DefaultMaxPendingEntries = 1 << 16
	DefaultMaxPendingBytes   = 64 << 20
)

// Options configure Open. Zero fields take the defaults above.
type Options struct {
	Dir    string
	Mode   Mode // ModeAsync or ModeSync; ModeMemory opens no WAL
	Method SyncMethod
	// SegmentBytes is the preallocated size of each segment file; a
	// multiple of 4096 (the O_DIRECT block).
	SegmentBytes int64
	// FlushIntervalNs is the time between background flushes in ModeAsync
	// (ModeSync flushes whenever entries are waiting).
	FlushIntervalNs int64
	// MaxPendingEntries and MaxPendingBytes bound what is appended but not
	// yet durable; beyond them Append returns ErrBacklogFull.
	MaxPendingEntries uint64
	MaxPendingBytes   int
	// PreallocZeros fills new segments with written zeros instead of
	// fallocate(2): slower to create, but later writes need no extent
	// conversion in the filesystem journal.
	PreallocZeros bool
	// OnGroupDurable, when set, is called by the flusher after each group
	// becomes durable, e.g. to feed the write and sync latency to a
	// fail-slow tracker. It must not block.
	OnGroupDurable func(entries uint64, groupBytes int, latencyNs int64)
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.Dir == "" {
		return c, errors.New("wal: Options.Dir is empty")
	}
	switch c.Mode {
	case ModeAsync, ModeSync:
	case ModeMemory:
		return c, errors.New("wal: mode memory keeps no WAL; do not Open one")
	default:
		return c, fmt.Errorf("wal: Options.Mode %v is not a mode", c.Mode)
	}
	switch c.Method {
	case SyncFdatasync, SyncDsync, SyncDirect:
	default:
		return c, fmt.Errorf("wal: Options.Method %v is not a sync method", c.Method)
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentBytes < blockBytes || c.SegmentBytes%blockBytes != 0 || c.SegmentBytes > 1<<32 {
		return c, fmt.Errorf("wal: Options.SegmentBytes %d must be a multiple of %d between %d and 4 GiB", c.SegmentBytes, blockBytes, blockBytes)
	}
	if c.FlushIntervalNs == 0 {
		c.FlushIntervalNs = DefaultFlushIntervalNs
	}
	if c.FlushIntervalNs < 0 {
		return c, fmt.Errorf("wal: Options.FlushIntervalNs %d is negative", c.FlushIntervalNs)
	}
	if c.MaxPendingEntries == 0 {
		c.MaxPendingEntries = DefaultMaxPendingEntries
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.MaxPendingBytes < 0 {
		return c, fmt.Errorf("wal: Options.MaxPendingBytes %d is negative", c.MaxPendingBytes)
	}
	return c, nil
}
