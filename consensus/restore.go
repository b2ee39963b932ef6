package consensus

import (
	"errors"
	"fmt"
)

// recordError is a journal record that does not decode: the journal holds
// what it cannot prove.
type recordError struct {
	seq    int
	reason string
}

func (e *recordError) Error() string {
	return fmt.Sprintf("consensus: journal record %d: %s", e.seq, e.reason)
}

func (e *recordError) JournalDamaged() bool { return true }

// restored is what a journal held.
type restored struct {
	records  int
	latest   map[uint64][]byte // index -> the slot bytes last journaled for it
	maxProp  uint64
	maxHint  uint64
	snapIdx  uint64
	snapData []byte
	voter    bool
}

// restoreJournal rebuilds the log, the state machine and the promise from
// the journal. It reports whether the journal holds a voter record (all
// the replica counted for is in it) and whether it was damaged; a damaged
// journal is discarded (the replica must then rejoin: it cannot prove what
// it accepted).
func (r *Replica) restoreJournal() (voter, damaged bool, err error) {
	j := r.js
	rs := restored{latest: map[uint64][]byte{}}
	stride := r.lay.SlotStrideBytes
	err = j.st.Load(func(b []byte) error {
		rs.records++
		if len(b) == 0 {
			return &recordError{rs.records, "empty"}
		}
		switch b[0] {
		case recSlot:
			s := b[1:]
			if uint64(len(s)) < encodedSlotBytes(0) || uint64(len(s)) > stride {
				return &recordError{rs.records, fmt.Sprintf("slot of %d bytes", len(s))}
			}
			idx := le.Uint64(s[slotIndexOff:])
			if idx == 0 {
				return &recordError{rs.records, "slot of index 0"}
			}
			// Into the ring position, as the write it records did: the
			// ring ends as the journal last saw it.
			buf := r.slotBuf(idx)
			clear(buf)
			copy(buf, s)
			v, st := decodeSlot(buf, idx, r.cfg.MaxPayloadBytes)
			if st != slotOK || v.bytes != uint64(len(s)) {
				return &recordError{rs.records, fmt.Sprintf("slot %d is %v", idx, st)}
			}
			rs.latest[idx] = append([]byte(nil), s...)
			rs.maxProp = max(rs.maxProp, v.proposal, le.Uint64(s[slotProposalOff:]))
			rs.maxHint = max(rs.maxHint, v.hint)
			pos := idx % r.lay.LogSlots
			j.jIdx[pos], j.jProp[pos], j.jCRC[pos] = idx, v.proposal, slotCRC(buf, v)
		case recPromise:
			if len(b) != 9 {
				return &recordError{rs.records, "short promise"}
			}
			rs.maxProp = max(rs.maxProp, le.Uint64(b[1:]))
		case recSnapshot:
			if len(b) < 9 {
				return &recordError{rs.records, "short snapshot"}
			}
			if idx := le.Uint64(b[1:]); idx >= rs.snapIdx {
				rs.snapIdx, rs.snapData = idx, append([]byte(nil), b[9:]...)
			}
		case recVoter:
			rs.voter = true
		default:
			return &recordError{rs.records, fmt.Sprintf("unknown kind %d", b[0])}
		}
		return nil
	})
	if err != nil {
		if !journalDamaged(err) {
			return false, false, fmt.Errorf("%w: load journal: %w", ErrStorage, err)
		}
		r.stats.JournalDamaged++
		clear(r.region[r.lay.LogOffset : r.lay.LogOffset+r.lay.LogSlots*stride])
		clear(j.jIdx)
		clear(j.jProp)
		clear(j.jCRC)
		if rerr := j.st.Reset(); rerr != nil {
			return false, true, fmt.Errorf("%w: reset damaged journal: %w", ErrStorage, errors.Join(err, rerr))
		}
		return false, true, nil
	}
	if rs.records == 0 {
		return false, false, nil
	}
	j.records = uint64(rs.records)
	j.voter = rs.voter
	if err := r.replay(&rs); err != nil {
		return false, false, err
	}
	return rs.voter, false, nil
}

// replay applies what the journal proves committed: the latest snapshot,
// then each slot up to the highest commit hint journaled (a hint is a
// commit index some leader had, and what it covers is held here in order).
// Later slots stay in the log as accepted, for the next recovery to weigh.
func (r *Replica) replay(rs *restored) error {
	if rs.snapIdx > 0 {
		if err := r.sm.Restore(Index(rs.snapIdx), r.unwrapSnapshot(rs.snapData)); err != nil {
			return fmt.Errorf("consensus: restore the journal's snapshot at %d: %w", rs.snapIdx, err)
		}
		r.applied = rs.snapIdx
	}
	commit := max(rs.maxHint, rs.snapIdx)
	for r.applied < commit {
		i := r.applied + 1
		s, ok := rs.latest[i]
		if !ok {
			break
		}
		payload := s[slotHeaderBytes : slotHeaderBytes+int(le.Uint32(s[slotLenOff:]))]
		if v, ok := decodeConf(payload); ok {
			r.applied = i
			r.applyConf(i, v)
			continue
		}
		if !forEachCommand(payload, noCommand) {
			break // a faulty writer's framing: leave it to the leader
		}
		forEachCommand(payload, func(cmd []byte) {
			r.stats.Commands++
			if r.ra != nil {
				r.raScratch = r.ra.ApplyResult(Index(i), cmd, r.raScratch[:0])
				return
			}
			r.sm.Apply(Index(i), cmd)
		})
		r.applied = i
		r.stats.Applied++
	}
	r.foldConf()
	r.commit = r.applied
	r.scanPos = r.applied + 1
	r.js.cursor = r.applied + 1
	r.stats.RestoredIndex = r.applied
	// The promise: at least every proposal this replica journaled, so a
	// leader it elects picks a higher one.
	r.js.mpSeen = rs.maxProp
	r.js.rescan = true
	le.PutUint64(r.region[hdrMinProposal:], sealWord(rs.maxProp))
	return nil
}
