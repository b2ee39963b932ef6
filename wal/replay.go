package wal

import (
	"fmt"
	"os"
)

// Replay calls fn for every durable record from index from on, in order.
// The payload is valid only during the call. Meant for start-up, before
// Append.
func (w *WAL) Replay(from uint64, fn func(index uint64, payload []byte) error) error {
	w.flushMu.Lock()
	segs := append([]segmentInfo(nil), w.segs...)
	w.flushMu.Unlock()
	limit := w.durable.Load()
	for i, s := range segs {
		if i+1 < len(segs) && segs[i+1].firstIndex <= from {
			continue
		}
		data, err := os.ReadFile(s.path)
		if err != nil {
			return fmt.Errorf("wal: replay: %w", err)
		}
		expect := s.firstIndex
		for off := 0; expect <= limit; {
			idx, payload, n, st := decodeRecord(data, off)
			if st != recordOK {
				if i+1 < len(segs) {
					break // the rest of a full segment
				}
				return &CorruptionError{File: s.path, OffsetBytes: int64(off), Reason: fmt.Sprintf("record %d no longer verifies", expect)}
			}
			if idx != expect {
				return &CorruptionError{File: s.path, OffsetBytes: int64(off), Reason: fmt.Sprintf("record has index %d, want %d", idx, expect)}
			}
			if idx >= from {
				if err := fn(idx, payload); err != nil {
					return err
				}
			}
			expect++
			off += n
		}
		if i+1 < len(segs) && expect != segs[i+1].firstIndex && expect <= limit {
			return &CorruptionError{File: s.path, OffsetBytes: 0, Reason: fmt.Sprintf("segment ends before index %d where %s begins", expect, segs[i+1].path)}
		}
	}
	return nil
}
