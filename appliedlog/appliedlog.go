// Package appliedlog keeps the most recent commands a replica applied, in
// order, within a byte budget: the oldest are dropped first. A node serves
// it to clients and tests that compare what replicas applied; it is a
// window for inspection, not a store of record (the replicated state is).
package appliedlog

import (
	"bytes"
	"sync"

	"github.com/rdmaconsensus/mu/consensus"
)

// Entry is one command as a replica applied it.
type Entry struct {
	Index consensus.Index
	Cmd   []byte
}

// EntryOverheadBytes is what one entry costs beside its command (index,
// slice header, allocation rounding), counted against the budget so that
// a flood of empty commands is bounded too.
const EntryOverheadBytes = 48

// DefaultMaxBytes is the budget of New(0).
const DefaultMaxBytes = 64 << 20

// Log is a bounded, ordered record of applied commands. Safe for
// concurrent use.
type Log struct {
	mu       sync.Mutex
	maxBytes uint64
	bytes    uint64
	entries  []Entry
	head     int // entries[:head] are dropped
	// restoredAt: entries at or below it came in a snapshot, never one by
	// one. trimmedAt: the newest index dropped for the budget.
	restoredAt, trimmedAt consensus.Index
}

// New returns an empty log of at most maxBytes (0: DefaultMaxBytes).
func New(maxBytes uint64) *Log {
	l := &Log{}
	l.SetMaxBytes(maxBytes)
	return l
}

// SetMaxBytes changes the budget (0: DefaultMaxBytes), dropping the
// oldest entries beyond it.
func (l *Log) SetMaxBytes(maxBytes uint64) {
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	l.mu.Lock()
	l.maxBytes = maxBytes
	l.trim()
	l.mu.Unlock()
}

func cost(cmd []byte) uint64 { return uint64(len(cmd)) + EntryOverheadBytes }

// Add records the command applied at index.
func (l *Log) Add(index consensus.Index, cmd []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxBytes == 0 {
		l.maxBytes = DefaultMaxBytes // the zero Log is usable
	}
	l.entries = append(l.entries, Entry{index, bytes.Clone(cmd)})
	l.bytes += cost(cmd)
	l.trim()
}

// trim drops the oldest entries beyond the budget (the newest stays even
// when alone over it) and compacts once half the slice is dropped.
func (l *Log) trim() {
	for l.bytes > l.maxBytes && len(l.entries)-l.head > 1 {
		e := &l.entries[l.head]
		l.bytes -= cost(e.Cmd)
		l.trimmedAt = e.Index
		*e = Entry{}
		l.head++
	}
	if l.head > 0 && l.head >= len(l.entries)/2 {
		n := copy(l.entries, l.entries[l.head:])
		clear(l.entries[n:])
		l.entries = l.entries[:n]
		l.head = 0
	}
}

// Restore empties the log after a snapshot restore at index.
func (l *Log) Restore(index consensus.Index) {
	l.mu.Lock()
	clear(l.entries)
	l.entries, l.head, l.bytes = l.entries[:0], 0, 0
	l.restoredAt, l.trimmedAt = index, 0
	l.mu.Unlock()
}

// Snapshot returns a copy of the entries, the snapshot index the log
// starts after (0: none) and the newest index dropped for the budget (0:
// none). Entries at or below either were not kept one by one.
func (l *Log) Snapshot() (entries []Entry, restoredAt, trimmedAt consensus.Index) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Entry(nil), l.entries[l.head:]...), l.restoredAt, l.trimmedAt
}

// Len is the number of entries kept; Bytes what they cost.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries) - l.head
}

// Bytes is what the kept entries cost against the budget.
func (l *Log) Bytes() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}
