package wal

import (
	"fmt"
	"os"
)

// recovered is what recovery leaves on disk: the segments holding records
// and where appending resumes in the last of them.
type recovered struct {
	segs        []segmentInfo
	firstIndex  uint64 // 0 when no records
	lastIndex   uint64
	endOffBytes int64 // end of the last record in the last segment
	capBytes    int64 // size of the last segment
	tail        []byte
}

// recoverLog scans every segment, cuts a torn tail and removes segments
// that hold no valid record at the end; a bad record with valid data
// after it is a *CorruptionError.
func recoverLog(dir string, segmentBytes int64, zeros bool) (recovered, error) {
	var r recovered
	segs, err := listSegments(dir)
	if err != nil {
		return r, err
	}
	for i := 0; i < len(segs); i++ {
		s := segs[i]
		data, err := os.ReadFile(s.path)
		if err != nil {
			return r, fmt.Errorf("wal: read segment: %w", err)
		}
		expect := s.firstIndex
		off := 0
		var st decodeStatus
		for {
			var idx uint64
			var n int
			idx, _, n, st = decodeRecord(data, off)
			if st != recordOK {
				break
			}
			if idx != expect {
				return r, &CorruptionError{File: s.path, OffsetBytes: int64(off), Reason: fmt.Sprintf("record has index %d, want %d", idx, expect)}
			}
			expect++
			off += n
		}
		count := expect - s.firstIndex
		if count > 0 && r.lastIndex != 0 && s.firstIndex != r.lastIndex+1 {
			return r, &CorruptionError{File: s.path, OffsetBytes: 0, Reason: fmt.Sprintf("segment begins at index %d, want %d", s.firstIndex, r.lastIndex+1)}
		}
		clean := st == recordZero && allZero(data[off:])
		if !clean {
			if err := validDataAfter(s.path, data, off, expect, segs[i+1:], st); err != nil {
				return r, err
			}
		} else if i < len(segs)-1 {
			if count == 0 {
				// An empty segment before others: only a hole could follow.
				if err := validDataAfter(s.path, data, off, expect, segs[i+1:], st); err != nil {
					return r, err
				}
			} else {
				r.keep(s, expect, int64(off), int64(len(data)), data)
				continue
			}
		}
		// The end of the log is here; nothing valid lies beyond.
		for _, later := range segs[i+1:] {
			if err := os.Remove(later.path); err != nil {
				return r, fmt.Errorf("wal: remove segment past the end of the log: %w", err)
			}
		}
		if count == 0 {
			if err := os.Remove(s.path); err != nil {
				return r, fmt.Errorf("wal: remove empty segment: %w", err)
			}
			return r, syncDir(dir)
		}
		capBytes := max(segmentBytes, roundUp(int64(len(data)), blockBytes))
		if !clean || int64(len(data)) < capBytes {
			if err := cutTail(s.path, int64(off), capBytes, zeros); err != nil {
				return r, err
			}
		}
		r.keep(s, expect, int64(off), capBytes, data)
		return r, syncDir(dir)
	}
	return r, nil
}

func (r *recovered) keep(s segmentInfo, next uint64, endOffBytes, capBytes int64, data []byte) {
	if r.firstIndex == 0 {
		r.firstIndex = s.firstIndex
	}
	r.lastIndex = next - 1
	r.segs = append(r.segs, s)
	r.endOffBytes = endOffBytes
	r.capBytes = capBytes
	start := endOffBytes / blockBytes * blockBytes
	r.tail = append(r.tail[:0], data[start:endOffBytes]...)
}

// validDataAfter reports a *CorruptionError at off when a verifying record
// with index >= next lies later in this segment or in a later one.
func validDataAfter(path string, data []byte, off int, next uint64, later []segmentInfo, st decodeStatus) error {
	reason := map[decodeStatus]string{
		recordZero:  "zeroed record",
		recordShort: "record runs past the end of the segment",
		recordBad:   "crc32c mismatch",
	}[st]
	if at, ok := findValidRecord(data, off, next); ok {
		return &CorruptionError{File: path, OffsetBytes: int64(off), Reason: fmt.Sprintf("%s, and a valid record follows at byte %d", reason, at)}
	}
	for _, s := range later {
		d, err := os.ReadFile(s.path)
		if err != nil {
			return fmt.Errorf("wal: read segment: %w", err)
		}
		if at, ok := findValidRecord(d, 0, next); ok {
			return &CorruptionError{File: path, OffsetBytes: int64(off), Reason: fmt.Sprintf("%s, and a valid record follows in %s at byte %d", reason, s.path, at)}
		}
	}
	return nil
}

// cutTail drops everything from off and preallocates back to capBytes, so
// the region reads as zeros: the clean end.
func cutTail(path string, off, capBytes int64, zeros bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: open segment to cut torn tail: %w", err)
	}
	err = f.Truncate(off)
	if err == nil {
		err = preallocate(f, off, capBytes-off, zeros)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: cut torn tail of %s at byte %d: %w", path, off, err)
	}
	return nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
