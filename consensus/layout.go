package consensus

import (
	"encoding/binary"
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
	hdrCaughtUp    = 24 // catch-up target reached, written by the leader after a bulk write
	hdrFlags       = 32 // owner flags (flagRejoining)
	hdrLeaderBeat  = 40 // counter the leader bumps on a cadence (written by the leader)
	headerBytes    = cacheLineBytes
)

// flagRejoining marks a replica that restarted without its log: it must not
// count in a recovery quorum until a leader has caught it up.
const flagRejoining = 1

// Slot encoding, little endian:
//
//	0  u64 index          absolute log index, so a reused ring position is not mistaken
//	8  u64 proposal       accepted proposal number
//	16 u64 commit hint    leader's commit index when the slot was written
//	24 u32 payload length
//	28 u32 reserved
//	32 payload, padded to 8 bytes
//	   u32 crc32c over bytes [0, 32+len)
//	   u32 canary         canaryFor(index), written last
const (
	slotIndexOff    = 0
	slotProposalOff = 8
	slotHintOff     = 16
	slotLenOff      = 24
	slotHeaderBytes = 32
	slotTrailer     = 8
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
func encodedSlotBytes(n int) uint64 {
	return slotHeaderBytes + alignUp(uint64(n), 8) + slotTrailer
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
type slotState uint8

const (
	slotEmpty    slotState = iota // no complete slot for this index (yet)
	slotOK                        // complete and checksum verified
	slotCorrupt                   // canary and index say complete, checksum fails
	slotReplaced                  // holds a later index: this one was reclaimed
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

// sealSlot writes the header, checksum and canary around a payload of n
// bytes already in place at buf[slotHeaderBytes:].
func sealSlot(buf []byte, index, proposal, hint uint64, n int) uint64 {
	le := binary.LittleEndian
	total := encodedSlotBytes(n)
	// Clear the old canary first: the canary position moves with the length
	// and a stale one must not validate a half-built slot.
	le.PutUint32(buf[total-4:], 0)
	le.PutUint64(buf[slotIndexOff:], index)
	le.PutUint64(buf[slotProposalOff:], proposal)
	le.PutUint64(buf[slotHintOff:], hint)
	le.PutUint32(buf[slotLenOff:], uint32(n))
	le.PutUint32(buf[slotLenOff+4:], 0)
	for i := slotHeaderBytes + n; i < int(total)-slotTrailer; i++ {
		buf[i] = 0
	}
	crc := crc32.Checksum(buf[:slotHeaderBytes+n], castagnoli)
	le.PutUint32(buf[total-8:], crc)
	le.PutUint32(buf[total-4:], canaryFor(index))
	return total
}

// decodeSlot classifies buf (one slot stride) for the expected index.
func decodeSlot(buf []byte, index uint64, maxPayload int) (slotView, slotState) {
	le := binary.LittleEndian
	got := le.Uint64(buf[slotIndexOff:])
	n := le.Uint32(buf[slotLenOff:])
	if int64(n) > int64(maxPayload) {
		return slotView{}, slotEmpty
	}
	total := encodedSlotBytes(int(n))
	if le.Uint32(buf[total-4:]) != canaryFor(got) {
		return slotView{}, slotEmpty
	}
	if got != index {
		if got > index {
			return slotView{index: got}, slotReplaced
		}
		return slotView{}, slotEmpty
	}
	if crc32.Checksum(buf[:slotHeaderBytes+int(n)], castagnoli) != le.Uint32(buf[total-8:]) {
		return slotView{index: got}, slotCorrupt
	}
	return slotView{
		index:    got,
		proposal: le.Uint64(buf[slotProposalOff:]),
		hint:     le.Uint64(buf[slotHintOff:]),
		payload:  buf[slotHeaderBytes : slotHeaderBytes+int(n)],
		bytes:    total,
	}, slotOK
}
