package consensus

import (
	"fmt"
	"hash/crc32"

	"github.com/rdmaconsensus/mu/permissions"
	"github.com/rdmaconsensus/mu/pullscore"
)

// cacheLineBytes is the alignment of every area and slot, so a slot never
// shares a line with its neighbour and a follower polling one slot's canary
// does not contend with the NIC writing the next.
const cacheLineBytes = 64

// Header word offsets inside the header cache line.
const (
	hdrMinProposal = 0  // highest proposal number promised (written by candidates)
	hdrFUO         = 8  // first undecided index: applied+1 (written by the owner)
	hdrCommit      = 16 // commit index word (written by an idle leader)
	hdrCaughtUp    = 24 // the leader's proposal, written after its catch-up range (writes land in order)
	hdrFlags       = 32 // owner flags (flagRejoining)
	hdrLeaderBeat  = 40 // counter the leader bumps on a cadence (written by the leader)
	// persisted index and the proposal it is valid under (written by the
	// owner in the async and sync modes; see journal)
	hdrPersisted      = 48
	hdrPersistedUnder = 56
	headerBytes       = cacheLineBytes
)

// Every header word but the leader's beat is sealed: a 48-bit value and a
// 16-bit check of it in one 8-byte word, written whole by one store or one
// RDMA write. A flipped bit fails the check and the word reads as unknown,
// never as another value: a commit index, a promise or a caught-up mark
// that memory damage raised could otherwise apply an uncommitted entry,
// or let a replica vote with a log it does not have. A cleared word
// (zero) is valid and means zero.
const sealedValueMask = 1<<48 - 1

// sealWord packs v (at most 48 bits) with its check.
func sealWord(v uint64) uint64 {
	v &= sealedValueMask
	return v | uint64(wordCheck(v))<<48
}

// openWord returns the value of a sealed word, and false if its check fails.
func openWord(w uint64) (uint64, bool) {
	v := w & sealedValueMask
	return v, uint16(w>>48) == wordCheck(v)
}

// wordCheck is 16 bits of a 64-bit mix of v (zero for zero).
func wordCheck(v uint64) uint16 {
	v ^= v >> 31
	v *= 0x7fb5d329728ea185
	v ^= v >> 27
	v *= 0x81dadef4bc2dd44d
	v ^= v >> 33
	return uint16(v >> 48)
}

// flagRejoining marks a replica that restarted without its log: it must not
// count in a recovery quorum until a leader has caught it up.
const flagRejoining = 1

// Slot encoding, little endian:
//
//	0  u64 index          absolute log index, so a reused ring position is not mistaken
//	8  u64 proposal       proposal the slot was (last) written under
//	16 u64 commit hint    leader's commit index when the slot was written
//	24 u32 payload length
//	28 u32 header check   crc32c over bytes [0, 28)
//	32 payload, padded to 16 bytes
//	   u64 proposal       the proposal the payload was sealed under
//	   u32 crc32c         over the payload
//	   u32 canary         slotCanary(index, sealing proposal), written last
//
// The header and the trailer each prove themselves. A write lands in
// address order, so a rewrite cut short leaves a new header over the old
// payload and trailer: if the old trailer still vouches for the payload
// (same length, same bytes: a new leader rewriting the value it adopted),
// the slot is the old, whole acceptance; otherwise it is damaged or
// corrupt. Either way no partial write passes for a whole one, and a
// rewrite of a committed value cut short on every replica does not erase
// the value.
const (
	slotIndexOff    = 0
	slotProposalOff = 8
	slotHintOff     = 16
	slotLenOff      = 24
	slotCheckOff    = 28
	slotHeaderBytes = 32
	slotTrailer     = 16
)

// Snapshot area header, then the snapshot bytes.
const (
	snapIndexOff    = 0  // u64 last index the snapshot covers
	snapLenOff      = 8  // u64 bytes
	snapCRCOff      = 16 // u32 crc32c of the bytes
	snapCanaryOff   = 20 // u32 canaryFor(index) ^ snapshotCanaryMix, written last
	snapHeaderBytes = cacheLineBytes
)

const snapshotCanaryMix = 0x5a5a0f0f

// slotCanary is the canary of a slot holding index under proposal: never
// zero (a cleared slot is not complete), different for the previous
// occupant of the ring position, and different for the same index under
// another proposal.
func slotCanary(index, proposal uint64) uint32 {
	h := (proposal + 1) * 0xbf58476d1ce4e5b9
	c := canaryFor(index) ^ uint32(h>>32) ^ uint32(h)
	if c == 0 {
		c = 1
	}
	return c
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// canaryFor is the canary of the slot holding index: never zero, and
// different for the previous occupant of the same ring position, so a stale
// slot is not taken for a fresh one.
func canaryFor(index uint64) uint32 {
	c := uint32(0x6d754c47) ^ uint32(index) ^ uint32(index>>32)*0x9e3779b1
	if c == 0 {
		c = 1
	}
	return c
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// encodedSlotBytes is how many bytes a slot with a payload of n bytes occupies
// in a write (header, padded payload, trailer).
// The payload is padded to the trailer's size so the trailer is aligned
// to it: writes and packets split a slot at multiples of it (MaxWriteBytes
// is one, MTUs are), so the trailer always lands whole.
func encodedSlotBytes(n int) uint64 {
	return slotHeaderBytes + alignUp(uint64(n), slotTrailer) + slotTrailer
}

// Layout places every area in a replica's region. All replicas of a cluster
// use the same layout.
type Layout struct {
	Members          int    // replicas in the cluster
	LogSlots         uint64 // ring capacity in slots
	MaxPayloadBytes  int    // largest slot payload (a batch of proposals)
	SlotStrideBytes  uint64 // distance between slots
	ReadWindowSlots  int    // slots read per peer per recovery round
	HeartbeatOffset  uint64
	HeartbeatBytes   uint64
	PermissionOffset uint64
	PermissionBytes  uint64
	DetectorScratch  uint64 // offset of the detector's read scratch
	DetectorScratchN uint64
	StageOffset      uint64 // per-member staging line (source of small writes)
	ReadOffset       uint64 // per-member read scratch: header line + window
	ReadStrideBytes  uint64
	SnapshotOffset   uint64
	SnapshotMaxBytes uint64
	LogOffset        uint64
	HandoverOffset   uint64 // the handover word a leader writes to its transfer target
	TotalBytes       uint64
}

// NewLayout computes the region layout for cfg. cfg must be valid.
func NewLayout(cfg Config) Layout {
	n := len(cfg.Members)
	l := Layout{
		Members:         n,
		LogSlots:        uint64(cfg.LogSlots),
		MaxPayloadBytes: cfg.MaxPayloadBytes,
		ReadWindowSlots: cfg.ReadWindowSlots,
	}
	l.SlotStrideBytes = alignUp(encodedSlotBytes(cfg.MaxPayloadBytes), cacheLineBytes)
	off := uint64(headerBytes)
	place := func(size uint64) uint64 {
		at := off
		off = alignUp(off+size, cacheLineBytes)
		return at
	}
	l.HeartbeatBytes = pullscore.AreaBytes()
	l.HeartbeatOffset = place(l.HeartbeatBytes)
	l.PermissionBytes = permissions.AreaBytes(n)
	l.PermissionOffset = place(l.PermissionBytes)
	l.DetectorScratchN = pullscore.ScratchBytes(n - 1)
	l.DetectorScratch = place(l.DetectorScratchN)
	l.StageOffset = place(uint64(n) * cacheLineBytes)
	l.ReadStrideBytes = headerBytes + uint64(cfg.ReadWindowSlots)*l.SlotStrideBytes
	l.ReadOffset = place(uint64(n) * l.ReadStrideBytes)
	l.SnapshotMaxBytes = uint64(cfg.SnapshotMaxBytes)
	l.SnapshotOffset = place(snapHeaderBytes + l.SnapshotMaxBytes)
	l.LogOffset = place(l.LogSlots * l.SlotStrideBytes)
	l.HandoverOffset = place(cacheLineBytes)
	l.TotalBytes = off
	return l
}

// SlotOffset is the region offset of the ring position holding index.
func (l *Layout) SlotOffset(index uint64) uint64 {
	return l.LogOffset + (index%l.LogSlots)*l.SlotStrideBytes
}

func (l *Layout) stage(member int) uint64 { return l.StageOffset + uint64(member)*cacheLineBytes }

func (l *Layout) readHeader(member int) uint64 {
	return l.ReadOffset + uint64(member)*l.ReadStrideBytes
}

func (l *Layout) readWindow(member int) uint64 { return l.readHeader(member) + headerBytes }

// slotState classifies the bytes at a ring position for an expected index.
// Recovery depends on the difference between empty and damaged: only a
// slot that provably never held the index may be read as "not accepted".
type slotState uint8

const (
	slotEmpty    slotState = iota // provably not holding this index: never written, or a complete older occupant
	slotOK                        // complete and checksum verified
	slotCorrupt                   // header and trailer whole, payload checksum fails
	slotReplaced                  // holds a later index: this one was reclaimed
	slotDamaged                   // header or trailer not whole: a write cut short, or a flipped word
)

func (s slotState) String() string {
	switch s {
	case slotEmpty:
		return "empty"
	case slotOK:
		return "ok"
	case slotCorrupt:
		return "corrupt"
	case slotReplaced:
		return "replaced"
	case slotDamaged:
		return "damaged"
	}
	return fmt.Sprintf("slotState(%d)", uint8(s))
}

// slotView is a decoded slot; payload aliases the region.
type slotView struct {
	index    uint64
	proposal uint64
	hint     uint64
	payload  []byte
	bytes    uint64 // encoded length
}

// encodeSlot writes a complete slot for index into buf (which must be at
// least encodedSlotBytes(len(payload)) long) and returns the encoded length.
// The payload may already sit at buf[slotHeaderBytes:]; copy handles overlap.
func encodeSlot(buf []byte, index, proposal, hint uint64, payload []byte) uint64 {
	n := len(payload)
	copy(buf[slotHeaderBytes:slotHeaderBytes+n], payload)
	return sealSlot(buf, index, proposal, hint, n)
}

// sealSlot writes the header, trailer and canary around a payload of n
// bytes already in place at buf[slotHeaderBytes:].
func sealSlot(buf []byte, index, proposal, hint uint64, n int) uint64 {
	total := encodedSlotBytes(n)
	// Clear the old canary first: the canary position moves with the length
	// and a stale one must not validate a half-built slot.
	le.PutUint32(buf[total-4:], 0)
	le.PutUint64(buf[slotIndexOff:], index)
	le.PutUint64(buf[slotProposalOff:], proposal)
	le.PutUint64(buf[slotHintOff:], hint)
	le.PutUint32(buf[slotLenOff:], uint32(n))
	le.PutUint32(buf[slotCheckOff:], crc32.Checksum(buf[:slotCheckOff], castagnoli))
	for i := slotHeaderBytes + n; i < int(total)-slotTrailer; i++ {
		buf[i] = 0
	}
	t := buf[total-slotTrailer:]
	le.PutUint64(t, proposal)
	le.PutUint32(t[8:], crc32.Checksum(buf[slotHeaderBytes:slotHeaderBytes+n], castagnoli))
	le.PutUint32(t[12:], slotCanary(index, proposal))
	return total
}

// decodeSlot classifies buf (one slot stride) for the expected index.
//
// The header is the last write that reached the ring position (writes land
// in address order). A whole header of another index says this index is
// not here. A whole header for index whose trailer does not prove a
// complete write of it is a write that never completed here: the first
// write of the index cut short, or a rewrite under a newer proposal cut
// short. A leader writes over a ring position only what its recovery
// allows: once a value is chosen at an index every later leader writes
// that same value (which leaves the slot whole, see the trailer case), and
// it overwrites the position with another index only when no value there
// was chosen. So what such a write destroyed was never chosen, and the
// slot is empty. A slot with signs of a complete write of the index and one
// bad word is damaged: recovery must not read it as empty.
func decodeSlot(buf []byte, index uint64, maxPayload int) (slotView, slotState) {
	got := le.Uint64(buf[slotIndexOff:])
	prop := le.Uint64(buf[slotProposalOff:])
	n := le.Uint32(buf[slotLenOff:])
	if got == 0 && neverWritten(buf) {
		return slotView{}, slotEmpty
	}
	if crc32.Checksum(buf[:slotCheckOff], castagnoli) != le.Uint32(buf[slotCheckOff:]) || int64(n) > int64(maxPayload) {
		return slotView{}, slotDamaged
	}
	if got != index {
		if got > index {
			return slotView{index: got}, slotReplaced
		}
		// The last write to land here was of an earlier lap, whole or
		// not: this index was never written here since (its header
		// would have replaced this one first).
		return slotView{}, slotEmpty
	}
	total := encodedSlotBytes(int(n))
	t := buf[total-slotTrailer:]
	sealed, crc, canary := le.Uint64(t), le.Uint32(t[8:]), le.Uint32(t[12:])
	payload := buf[slotHeaderBytes : slotHeaderBytes+int(n)]
	if canary != slotCanary(got, sealed) {
		if canary == slotCanary(got, prop) || sealed == prop && crc32.Checksum(payload, castagnoli) == crc {
			return slotView{}, slotDamaged // one bad word in a complete slot
		}
		return slotView{}, slotEmpty // a write of index that never completed here
	}
	if crc32.Checksum(payload, castagnoli) != crc {
		switch {
		case prop > sealed:
			return slotView{}, slotEmpty // a rewrite of another value cut short
		case prop == sealed:
			return slotView{index: got}, slotCorrupt
		}
		return slotView{}, slotDamaged
	}
	// A header newer than the trailer is a rewrite of the same value cut
	// short: what this replica holds whole is the payload under the
	// trailer's proposal.
	return slotView{
		index:    got,
		proposal: sealed,
		hint:     le.Uint64(buf[slotHintOff:]),
		payload:  payload,
		bytes:    total,
	}, slotOK
}

// neverWritten reports whether a slot's header and empty-slot trailer are
// still all zero, as a cleared log leaves them.
func neverWritten(buf []byte) bool {
	for _, b := range buf[:encodedSlotBytes(0)] {
		if b != 0 {
			return false
		}
	}
	return true
}
