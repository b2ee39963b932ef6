package consensus

import (
	"fmt"
	"slices"
	"sync/atomic"
)

// Journal records, the first byte of each Storage record:
//
//	slot      1, then the slot's encoded bytes as they lie in the log
//	promise   2, then u64 proposal: a min_proposal this replica held
//	snapshot  3, then u64 last index covered, then the state machine's bytes
//	voter     4: from here on the journal holds all this replica counted
//	          for (written at the creation of a cluster, and after a
//	          rejoining replica's catch-up has been journaled)
//	compact   5, then u64 applied index, u64 highest proposal, u8 voter,
//	          u32 slot count, each slot as u32 length and its bytes, then
//	          the snapshot at the applied index (membership, then the state
//	          machine's bytes, as a catch-up snapshot carries them): stands
//	          for every record before it (Compacter)
const (
	recSlot     = 1
	recPromise  = 2
	recSnapshot = 3
	recVoter    = 4
	recCompact  = 5
)

// compactRetryNs spaces a replica's attempts to compact while its ring
// differs from its journal (slots landed and not yet journaled).
const compactRetryNs = 1_000_000

// journal is a replica's persistence state (async and sync modes).
//
// A replica journals what lands in its log, as Paxos asks of an
// acceptor: every complete slot, in index order, whenever it differs from
// what the journal last holds for that ring position. It publishes in its
// header the persisted index P and the proposal it was computed under:
// every index up to P holds, durably in the journal, the slot the leader
// of that proposal wrote there (indexes up to the replica's applied
// position count too: they were committed, so durable on a majority,
// before it applied them). In sync mode the leader counts a follower
// toward an index's majority only when the follower's proposal word is
// the leader's and P reaches the index.
//
// A new leader rewrites the slots it adopted under its own proposal and
// then writes its proposal into the catch-up mark; writes on one
// connection land in order. So a follower that sees a new min_proposal
// publishes nothing until the mark carries that proposal, then compares
// its whole ring with the journal once (rescan) and from then on follows
// new slots of that proposal in order (forward scan).
type journal struct {
	st   Storage
	sync bool

	// What the journal holds last for each ring position.
	jIdx  []uint64
	jProp []uint64
	jCRC  []uint32

	mpSeen  uint64 // min_proposal last seen in the header
	promSeq uint64 // journal record of mpSeen's promise (0: loaded from the journal)
	under   uint64 // proposal P is valid under; 0 while waiting
	rescan  bool   // waiting to compare the ring with the journal
	cursor  uint64 // next index the forward scan examines

	// marks pair a persisted index with the record that must be durable
	// before it may be published, oldest first.
	marks     []jmark
	mHead     int
	mLen      int
	lastSeq   uint64
	persisted uint64 // P as published under under

	buf   []byte   // one record
	order []uint64 // rescan scratch

	voter     bool     // a voter record is in the journal
	restored  bool     // async restart, not yet caught up (restore.go)
	peerFlags []uint64 // async: each member's header flags last read

	compacting   atomic.Bool // a Compact runs
	compactErr   atomic.Pointer[error]
	compactTryAt int64  // no attempt before (Step's clock)
	compactedAt  uint64 // applied index of the last snapshot taken
	lossSince    int64
	records      uint64
	err          atomic.Pointer[error]
}

type jmark struct{ seq, p uint64 }

func newJournal(cfg *Config, lay *Layout) *journal {
	n := lay.LogSlots
	return &journal{
		st:     cfg.Storage,
		sync:   cfg.Durability == DurabilitySync,
		jIdx:   make([]uint64, n),
		jProp:  make([]uint64, n),
		jCRC:   make([]uint32, n),
		marks:  make([]jmark, 64),
		buf:    make([]byte, 1+max(lay.SlotStrideBytes, 8)),
		order:  make([]uint64, 0, n),
		rescan: true, // nothing is published before a leader's rewrites are seen
	}
}

// StorageErr is the error that made the replica fence itself because its
// Storage failed (wrapping ErrStorage), or nil. Safe from any goroutine.
func (r *Replica) StorageErr() error {
	if r.js == nil {
		return nil
	}
	if e := r.js.err.Load(); e != nil {
		return *e
	}
	return nil
}

// storageFailed fences the replica on a storage error: after a failed
// write or sync nothing may be reported durable again.
func (r *Replica) storageFailed(op string, err error) {
	j := r.js
	if j.err.Load() == nil {
		e := fmt.Errorf("%w: %s: %w", ErrStorage, op, err)
		j.err.Store(&e)
	}
	r.stats.StorageErrors++
	r.Fence()
	r.fence()
}

func (r *Replica) appendRecord(rec []byte) bool {
	j := r.js
	seq, err := j.st.Append(rec)
	if err != nil {
		r.storageFailed("append", err)
		return false
	}
	j.lastSeq = seq
	j.records++
	return true
}

// journalPromise records that this replica holds min_proposal mp, and
// invalidates what it published: slots may now be rewritten under mp.
func (r *Replica) journalPromise(mp uint64) (seq uint64, ok bool) {
	j := r.js
	j.mpSeen = mp
	j.under = 0
	j.rescan = true
	j.persisted = 0
	j.mLen = 0
	rec := j.buf[:9]
	rec[0] = recPromise
	le.PutUint64(rec[1:], mp)
	if !r.appendRecord(rec) {
		return 0, false
	}
	j.promSeq = j.lastSeq
	return j.lastSeq, true
}

// journalSnapshot records a restored snapshot: the journal then covers
// every index up to idx without the slots.
func (r *Replica) journalSnapshot(idx uint64, data []byte) {
	if r.js == nil || r.js.err.Load() != nil {
		return
	}
	rec := make([]byte, 9+len(data)) // rare: a follower that fell off the log
	rec[0] = recSnapshot
	le.PutUint64(rec[1:], idx)
	copy(rec[9:], data)
	r.appendRecord(rec)
}

// journalStep journals what changed in the log and publishes the
// persisted index. Called once per Step after the role's work.
func (r *Replica) journalStep() {
	j := r.js
	if j == nil || j.err.Load() != nil || r.fenced {
		return
	}
	if mp, ok := openWord(le.Uint64(r.region[hdrMinProposal:])); ok && mp != j.mpSeen {
		if _, ok := r.journalPromise(mp); !ok {
			return
		}
	}
	if j.rescan {
		switch r.role {
		case roleLeader:
			if r.proposal == j.mpSeen {
				r.rescanJournal()
			}
		case roleFollower:
			if cu, ok := openWord(le.Uint64(r.region[hdrCaughtUp:])); ok && cu == j.mpSeen && cu != 0 {
				r.rescanJournal()
			}
		}
	}
	if j.under != 0 {
		r.journalForward()
	}
	r.endRestored()
	if !j.voter && !r.rejoining && !j.restored && !j.rescan {
		// After the records of its catch-up: durable in order, the
		// voter record proves them durable too.
		r.journalVoter()
	}
	r.publishPersisted()
	r.maybeCompact()
}

// maybeCompact hands the storage a snapshot of this replica's journal
// when it asks for one: the state machine at the applied index and every
// slot of the ring as journaled (what a recovery reads from this replica,
// so it must survive the records it replaces), with the promise and the
// voter record. Taken on the driving goroutine only while the ring holds
// what the journal holds; written by the storage on its own goroutine.
func (r *Replica) maybeCompact() {
	j := r.js
	c, ok := j.st.(Compacter)
	if !ok {
		return
	}
	if e := j.compactErr.Load(); e != nil {
		r.storageFailed("compact", *e)
		return
	}
	if j.compacting.Load() || j.under == 0 || j.rescan || r.applied <= j.compactedAt ||
		r.now < j.compactTryAt || !c.CompactDue() {
		return
	}
	j.compactTryAt = r.now + compactRetryNs
	n := r.lay.LogSlots
	stride := r.lay.SlotStrideBytes
	head := make([]byte, 0, 22+n*(4+stride))
	head = append(head, recCompact)
	head = le.AppendUint64(head, r.applied)
	maxProp := j.mpSeen
	var voter byte
	if j.voter {
		voter = 1
	}
	head = le.AppendUint64(head, 0) // highest proposal, below
	head = append(head, voter)
	countOff := len(head)
	head = le.AppendUint32(head, 0)
	count := uint32(0)
	for pos := uint64(0); pos < n; pos++ {
		if j.jIdx[pos] == 0 {
			continue
		}
		off := r.lay.LogOffset + pos*stride
		at := len(head) + 4
		head = le.AppendUint32(head, 0)
		head = append(head, r.region[off:off+stride]...)
		cp := head[at:]
		v, st := decodeSlot(cp, j.jIdx[pos], r.cfg.MaxPayloadBytes)
		if st != slotOK || !j.matches(pos, j.jIdx[pos], v.proposal, slotCRC(cp, v)) {
			return // landed since it was journaled: the journal is behind
		}
		head = head[:at+int(v.bytes)]
		le.PutUint32(head[at-4:], uint32(v.bytes))
		maxProp = max(maxProp, v.proposal)
		count++
	}
	le.PutUint64(head[9:], maxProp)
	le.PutUint32(head[countOff:], count)
	data, err := r.sm.Snapshot()
	if err != nil {
		return // the state machine cannot now; the journal keeps growing
	}
	// The membership travels with the state, as in a catch-up snapshot.
	mem := make([]byte, snapMemBytes)
	r.wrapSnapshot(mem)
	seq := j.lastSeq
	j.compactedAt = r.applied
	if ic, ok := c.(interface{ compactsInline() bool }); ok && ic.compactsInline() {
		// The simulator's disk: on the driving goroutine, so a seed
		// replays the same.
		if err := c.Compact(seq, [][]byte{head, mem, data}); err != nil {
			r.storageFailed("compact", err)
		}
		return
	}
	j.compacting.Store(true)
	go func() {
		defer j.compacting.Store(false)
		if err := c.Compact(seq, [][]byte{head, mem, data}); err != nil {
			j.compactErr.Store(&err)
		}
	}()
}

// journalVoter records that this replica may vote after a restart.
func (r *Replica) journalVoter() {
	j := r.js
	if r.appendRecord([]byte{recVoter}) {
		j.voter = true
	}
}

// journalMatches reports whether the journal's last record for the ring
// position of index holds this slot.
func (j *journal) matches(pos, index, proposal uint64, crc uint32) bool {
	return j.jIdx[pos] == index && j.jProp[pos] == proposal && j.jCRC[pos] == crc
}

// journalSlot appends the complete slot v at index.
func (r *Replica) journalSlot(index uint64, v slotView) bool {
	j := r.js
	buf := r.slotBuf(index)
	rec := j.buf[:1+v.bytes]
	rec[0] = recSlot
	copy(rec[1:], buf[:v.bytes])
	if !r.appendRecord(rec) {
		return false
	}
	pos := index % r.lay.LogSlots
	j.jIdx[pos], j.jProp[pos], j.jCRC[pos] = index, v.proposal, slotCRC(buf, v)
	return true
}

// slotCRC is the payload checksum in a complete slot's trailer.
func slotCRC(buf []byte, v slotView) uint32 { return le.Uint32(buf[v.bytes-8:]) }

// rescanJournal journals, in index order, every complete slot of the ring
// that differs from the journal, then follows slots under mpSeen.
func (r *Replica) rescanJournal() {
	j := r.js
	j.order = j.order[:0]
	n := r.lay.LogSlots
	for pos := uint64(0); pos < n; pos++ {
		off := r.lay.LogOffset + pos*r.lay.SlotStrideBytes
		buf := r.region[off : off+r.lay.SlotStrideBytes]
		idx := le.Uint64(buf[slotIndexOff:])
		if idx == 0 || idx%n != pos {
			continue
		}
		v, st := decodeSlot(buf, idx, r.cfg.MaxPayloadBytes)
		if st != slotOK || j.matches(pos, idx, v.proposal, slotCRC(buf, v)) {
			continue
		}
		j.order = append(j.order, idx)
	}
	slices.Sort(j.order)
	for _, idx := range j.order {
		v, _ := decodeSlot(r.slotBuf(idx), idx, r.cfg.MaxPayloadBytes)
		if !r.journalSlot(idx, v) {
			return
		}
	}
	j.under = j.mpSeen
	j.rescan = false
	j.cursor = r.applied + 1
	j.pushMark(j.lastSeq, r.applied)
}

// journalForward journals the slots of proposal under that follow the
// cursor, in order, and marks how far they reach.
func (r *Replica) journalForward() {
	j := r.js
	start := j.cursor
	for k := uint64(0); k < r.lay.LogSlots; k++ {
		i := j.cursor
		buf := r.slotBuf(i)
		v, st := decodeSlot(buf, i, r.cfg.MaxPayloadBytes)
		if st != slotOK || v.proposal != j.under {
			if i <= r.applied {
				// Applied already (a snapshot, or an older term's slot
				// committed before this leader): the journal needs it
				// no more for P; slots applied in the Step they
				// landed are still journaled above.
				j.cursor = r.applied + 1
				continue
			}
			break
		}
		if pos := i % r.lay.LogSlots; !j.matches(pos, i, v.proposal, slotCRC(buf, v)) {
			if !r.journalSlot(i, v) {
				return
			}
		}
		j.cursor++
	}
	if j.cursor > start || j.cursor-1 > j.persisted {
		j.pushMark(j.lastSeq, j.cursor-1)
	}
}

// pushMark records that p may be published once seq is durable. A full
// queue merges into its newest mark (a later seq only delays p).
func (j *journal) pushMark(seq, p uint64) {
	if j.mLen > 0 {
		last := &j.marks[(j.mHead+j.mLen-1)%len(j.marks)]
		if last.p >= p && last.seq >= seq {
			return
		}
		if last.seq == seq || j.mLen == len(j.marks) {
			last.seq, last.p = max(last.seq, seq), max(last.p, p)
			return
		}
	}
	j.marks[(j.mHead+j.mLen)%len(j.marks)] = jmark{seq: seq, p: p}
	j.mLen++
}

// publishPersisted advances P over the marks whose records are durable and
// writes P and its proposal into the header.
func (r *Replica) publishPersisted() {
	j := r.js
	d, err := j.st.Durable()
	if err != nil {
		r.storageFailed("sync", err)
		return
	}
	for j.mLen > 0 && j.marks[j.mHead].seq <= d {
		j.persisted = max(j.persisted, j.marks[j.mHead].p)
		j.mHead = (j.mHead + 1) % len(j.marks)
		j.mLen--
	}
	under, p := j.under, j.persisted
	if under == 0 {
		// Waiting for the leader's rewrites: nothing is persisted under
		// a proposal yet, but the promise itself is published once it
		// is durable, with P = 0 (a candidate in sync mode counts this
		// replica's prepare only then: see Replica.promised).
		under, p = j.mpSeen, 0
	}
	if d < j.promSeq {
		// The promise is not durable: a restart now would forget it,
		// so nothing may be counted on it yet.
		under, p = 0, 0
	}
	le.PutUint64(r.region[hdrPersisted:], sealWord(p))
	le.PutUint64(r.region[hdrPersistedUnder:], sealWord(under))
	if j.under != 0 {
		if r.commit > p {
			if j.lossSince == 0 {
				j.lossSince = r.now
			}
		} else {
			j.lossSince = 0
		}
	}
}

// ownDurable is the index up to which this leader's own log is durable
// under its proposal.
func (r *Replica) ownDurable() uint64 {
	if j := r.js; j != nil && j.under == r.proposal {
		return j.persisted
	}
	return 0
}

// peerDurable is the index up to which p holds this leader's slots durably.
func (r *Replica) peerDurable(p *peer) uint64 {
	if p.durUnder == r.proposal {
		return p.durable
	}
	return 0
}

// durabilityStats fills the journal's part of Stats.
func (r *Replica) durabilityStats(s *Stats) {
	j := r.js
	if j == nil {
		return
	}
	s.JournalRecords = j.records
	if j.under != 0 {
		s.Persisted = j.persisted
	}
	if j.lossSince != 0 && r.commit > j.persisted {
		s.LossWindowEntries = r.commit - j.persisted
		s.LossWindowNs = r.now - j.lossSince
	}
}
