package appliedlog

import (
	"fmt"
	"testing"

	"github.com/rdmaconsensus/mu/consensus"
)

func TestLogKeepsNewestWithinBudget(t *testing.T) {
	const cmdBytes = 100
	budget := uint64(10 * (cmdBytes + EntryOverheadBytes))
	l := New(budget)
	for i := 1; i <= 1000; i++ {
		l.Add(consensus.Index(i), make([]byte, cmdBytes))
		if l.Bytes() > budget {
			t.Fatalf("after %d adds: %d bytes kept, budget %d", i, l.Bytes(), budget)
		}
	}
	entries, restored, trimmed := l.Snapshot()
	if len(entries) != 10 || entries[0].Index != 991 || entries[9].Index != 1000 {
		t.Fatalf("kept %d entries from %d", len(entries), entries[0].Index)
	}
	if restored != 0 || trimmed != 990 {
		t.Errorf("restoredAt %d trimmedAt %d, want 0 and 990", restored, trimmed)
	}
	// The backing array does not grow with the number of adds.
	if c := cap(l.entries); c > 64 {
		t.Errorf("backing array holds %d entries for 10 kept", c)
	}
}

// A flood of empty commands is bounded too: each entry costs its overhead.
func TestLogBoundsEmptyCommands(t *testing.T) {
	l := New(100 * EntryOverheadBytes)
	for i := 1; i <= 100000; i++ {
		l.Add(consensus.Index(i), nil)
	}
	if n := l.Len(); n != 100 {
		t.Errorf("kept %d empty entries, want 100", n)
	}
}

// One command larger than the whole budget is kept alone: the newest is
// always there.
func TestLogKeepsOversizedNewest(t *testing.T) {
	l := New(1000)
	l.Add(1, make([]byte, 10))
	l.Add(2, make([]byte, 5000))
	entries, _, trimmed := l.Snapshot()
	if len(entries) != 1 || entries[0].Index != 2 || trimmed != 1 {
		t.Errorf("entries %v trimmed %d", entries, trimmed)
	}
}

func TestLogRestoreAndShrink(t *testing.T) {
	l := New(0)
	for i := 1; i <= 5; i++ {
		l.Add(consensus.Index(i), []byte(fmt.Sprint(i)))
	}
	l.Restore(10)
	l.Add(11, []byte("x"))
	entries, restored, trimmed := l.Snapshot()
	if len(entries) != 1 || restored != 10 || trimmed != 0 {
		t.Errorf("after restore: %v %d %d", entries, restored, trimmed)
	}
	l.Add(12, []byte("y"))
	l.SetMaxBytes(1 + EntryOverheadBytes)
	if entries, _, trimmed = l.Snapshot(); len(entries) != 1 || entries[0].Index != 12 || trimmed != 11 {
		t.Errorf("after shrinking: %v %d", entries, trimmed)
	}
	// The zero Log works with the default budget.
	var z Log
	z.Add(1, []byte("a"))
	if z.Len() != 1 {
		t.Error("zero Log lost its entry")
	}
	// Snapshot copies: the caller cannot change the log.
	entries, _, _ = l.Snapshot()
	entries[0].Index = 99
	if e, _, _ := l.Snapshot(); e[0].Index != 12 {
		t.Error("Snapshot shares its slice")
	}
}
