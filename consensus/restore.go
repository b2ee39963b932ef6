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
	// loadSlot puts a journaled slot into its ring position, as the write
	// it records did: the ring ends as the journal last saw it.
	loadSlot := func(s []byte) error {
		if uint64(len(s)) < encodedSlotBytes(0) || uint64(len(s)) > stride {
			return &recordError{rs.records, fmt.Sprintf("slot of %d bytes", len(s))}
		}
		idx := le.Uint64(s[slotIndexOff:])
		if idx == 0 {
			return &recordError{rs.records, "slot of index 0"}
		}
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
		return nil
	}
	// loadCompact reads a compaction's snapshot (persist.go, recCompact).
	loadCompact := func(b []byte) error {
		if len(b) < 22 {
			return &recordError{rs.records, "short compaction"}
		}
		applied, prop, voter, count := le.Uint64(b[1:]), le.Uint64(b[9:]), b[17] == 1, le.Uint32(b[18:])
		p := b[22:]
		for k := uint32(0); k < count; k++ {
			if len(p) < 4 || uint64(len(p)-4) < uint64(le.Uint32(p)) {
				return &recordError{rs.records, "compaction's slots cut short"}
			}
			n := le.Uint32(p)
			if err := loadSlot(p[4 : 4+n]); err != nil {
				return err
			}
			p = p[4+n:]
		}
		if applied >= rs.snapIdx {
			rs.snapIdx, rs.snapData = applied, append([]byte(nil), p...)
		}
		rs.maxProp = max(rs.maxProp, prop)
		rs.voter = rs.voter || voter
		j.compactedAt = applied
		return nil
	}
	err = j.st.Load(func(b []byte) error {
		rs.records++
		if len(b) == 0 {
			return &recordError{rs.records, "empty"}
		}
		switch b[0] {
		case recSlot:
			return loadSlot(b[1:])
		case recCompact:
			return loadCompact(b)
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

// Header flags of a replica restarted in async mode, beside flagRejoining
// (which it also publishes, so a candidate of the running group does not
// count it):
//
//	flagRestored  restarted in async mode and not yet caught up by a
//	              leader: nothing it accepted in its last run survives
//	              but what its journal holds
//	flagJournal   with flagRestored: its journal was intact, and it votes
//	              with it in an election every member takes part in
const (
	flagRestored = 2
	flagJournal  = 4
)

// admitJournal decides, after the journal was loaded, whether this
// replica votes (docs/durability.md, "Restart").
func (r *Replica) admitJournal(voter, damaged bool) {
	j := r.js
	if r.cfg.Durability == DurabilityAsync {
		r.admitAsync(damaged)
		return
	}
	switch {
	case damaged:
		r.rejoining = true // it cannot prove what it accepted
	case !voter && j.records == 0 && r.cfg.NewCluster:
		// A member of a cluster being created: nothing to forget.
		r.journalVoter()
	case !voter:
		// An empty data directory without the new-cluster flag (a lost
		// disk, a new machine), or a journal that never caught up: it
		// may have counted for what it does not hold.
		r.rejoining = true
	}
	if r.rejoining {
		j.voter = false
	}
}

// admitAsync: in async mode its peers committed on memory
// acknowledgements it may never have journaled, so a restarted replica
// never votes beside replicas that kept their memory. It is restored: it
// votes with its journal only in an election that every member takes
// part in (restoredHold), which weighs every member's journal and every
// survivor's memory, so what such an election loses is only what no
// replica kept: the entries no journal had made durable, the reported
// window. An empty or damaged journal holds nothing to vote with: the
// replica is restored but rejoining, and such an election goes on
// without its vote once it shows it applied nothing.
func (r *Replica) admitAsync(damaged bool) {
	j := r.js
	j.peerFlags = make([]uint64, r.n)
	if !damaged && j.records == 0 && r.cfg.NewCluster {
		r.journalVoter()
		return
	}
	j.restored = true
	j.voter = false
	if damaged || j.records == 0 {
		r.rejoining = true
	}
}

// restoredFlags are the header flags of a restored replica.
func (r *Replica) restoredFlags() uint64 {
	if r.js == nil || !r.js.restored {
		return 0
	}
	if r.rejoining {
		return flagRejoining | flagRestored
	}
	return flagRejoining | flagRestored | flagJournal
}

// notePeerFlags records p's header flags; a restored replica counts a
// restored peer that holds its journal as a voter (restoredHold then asks
// for every member).
func (r *Replica) notePeerFlags(p *peer, flags uint64, ok bool) {
	j := r.js
	if j == nil || j.peerFlags == nil {
		return
	}
	if !ok {
		flags = flagRejoining
	}
	j.peerFlags[p.member] = flags
	if j.restored && !r.rejoining && flags&(flagRestored|flagJournal) == flagRestored|flagJournal {
		p.rejoining = false
	}
}

// restoredHold reports whether a restored candidate's election phase,
// with have peers counted, must wait: it goes on only with every member,
// each either counted or restored without a journal and having applied
// nothing. A restored replica's log may lack what a survivor or another
// restored replica holds, and those replayed into their state machines
// what their journals proved committed: a recovery that left any of them
// out could choose another value at such an index.
func (r *Replica) restoredHold(have int) bool {
	j := r.js
	if j == nil || !j.restored {
		return false
	}
	for i := range r.peers {
		p := &r.peers[i]
		if f := j.peerFlags[p.member]; p.hdrOK && f&(flagRejoining|flagRestored|flagJournal) == flagRejoining|flagRestored && p.applied == 0 {
			have++
		}
	}
	return have < len(r.peers)
}

// endRestored: a leader caught this replica up, or it leads; from now on
// it is a plain voter (its log is the group's again).
func (r *Replica) endRestored() {
	j := r.js
	if j == nil || !j.restored {
		return
	}
	cu, ok := openWord(le.Uint64(r.region[hdrCaughtUp:]))
	if r.role != roleLeader && (!ok || cu == 0) {
		return
	}
	j.restored = false
	r.publishHeader()
}
