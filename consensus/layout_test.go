package consensus

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

func testLayoutConfig() Config {
	c := DefaultConfig()
	c.Members = []rdma.NodeID{1, 2, 3}
	c.LogSlots = 64
	c.MaxPayloadBytes = 256
	c.ReadWindowSlots = 8
	c.MaxInflightSlots = 8
	c.SnapshotMaxBytes = 4096
	return c
}

func TestLayoutAlignedAndDisjoint(t *testing.T) {
	c := testLayoutConfig()
	l := NewLayout(c)
	areas := []struct {
		name      string
		off, size uint64
	}{
		{"header", 0, headerBytes},
		{"heartbeat", l.HeartbeatOffset, l.HeartbeatBytes},
		{"permissions", l.PermissionOffset, l.PermissionBytes},
		{"detector scratch", l.DetectorScratch, l.DetectorScratchN},
		{"stage", l.StageOffset, uint64(l.Members) * cacheLineBytes},
		{"read", l.ReadOffset, uint64(l.Members) * l.ReadStrideBytes},
		{"snapshot", l.SnapshotOffset, snapHeaderBytes + l.SnapshotMaxBytes},
		{"log", l.LogOffset, l.LogSlots * l.SlotStrideBytes},
	}
	for i, a := range areas {
		if a.off%cacheLineBytes != 0 {
			t.Errorf("%s at %d is not cache-line aligned", a.name, a.off)
		}
		if a.off+a.size > l.TotalBytes {
			t.Errorf("%s [%d,%d) past region end %d", a.name, a.off, a.off+a.size, l.TotalBytes)
		}
		for _, b := range areas[i+1:] {
			if a.off < b.off+b.size && b.off < a.off+a.size && a.size > 0 && b.size > 0 {
				t.Errorf("%s [%d,%d) overlaps %s [%d,%d)", a.name, a.off, a.off+a.size, b.name, b.off, b.off+b.size)
			}
		}
	}
	if l.SlotStrideBytes%cacheLineBytes != 0 || l.SlotStrideBytes < encodedSlotBytes(c.MaxPayloadBytes) {
		t.Fatalf("slot stride %d does not hold a full slot of %d", l.SlotStrideBytes, encodedSlotBytes(c.MaxPayloadBytes))
	}
	if got := l.SlotOffset(1 + l.LogSlots); got != l.SlotOffset(1) {
		t.Fatalf("ring position of index 1+LogSlots = %d, want %d", got, l.SlotOffset(1))
	}
}

func TestSlotRoundTrip(t *testing.T) {
	buf := make([]byte, 512)
	for _, n := range []int{0, 1, 7, 8, 9, 200, 256} {
		payload := bytes.Repeat([]byte{byte(n)}, n)
		total := encodeSlot(buf, 42, 7, 40, payload)
		if total != encodedSlotBytes(n) {
			t.Fatalf("len %d: encoded %d, want %d", n, total, encodedSlotBytes(n))
		}
		v, st := decodeSlot(buf, 42, 256)
		if st != slotOK || v.proposal != 7 || v.hint != 40 || !bytes.Equal(v.payload, payload) {
			t.Fatalf("len %d: decode = %v %+v", n, st, v)
		}
	}
}

func TestSlotRejectsStaleAndCorrupt(t *testing.T) {
	buf := make([]byte, 512)
	encodeSlot(buf, 5, 1, 0, []byte("hello"))
	if _, st := decodeSlot(buf, 5+64, 256); st != slotEmpty {
		t.Fatalf("older occupant of the ring position read as %v, want empty", st)
	}
	if v, st := decodeSlot(buf, 5-4, 256); st != slotReplaced || v.index != 5 {
		t.Fatalf("newer occupant read as %v (index %d), want replaced", st, v.index)
	}
	// Flip one payload bit: canary and index still match, checksum fails.
	buf[slotHeaderBytes+2] ^= 0x10
	if _, st := decodeSlot(buf, 5, 256); st != slotCorrupt {
		t.Fatalf("bit-flipped payload read as %v, want corrupt", st)
	}
	buf[slotHeaderBytes+2] ^= 0x10
	// Flip a hint bit: the header check fails, so the slot is damaged.
	buf[slotHintOff] ^= 1
	if _, st := decodeSlot(buf, 5, 256); st != slotDamaged {
		t.Fatalf("bit-flipped hint read as %v, want damaged", st)
	}
	buf[slotHintOff] ^= 1
	// A length beyond the maximum is not a slot, and not an empty one.
	binary.LittleEndian.PutUint32(buf[slotLenOff:], 100000)
	if _, st := decodeSlot(buf, 5, 256); st != slotDamaged {
		t.Fatalf("oversized length read as %v, want damaged", st)
	}
}

// TestSlotDamagedWordIsNotEmpty: a flip in any word the checksum does not
// vouch for on its own (index, proposal, length, canary) must read as
// damaged, never as empty: recovery would take empty for "not accepted".
func TestSlotDamagedWordIsNotEmpty(t *testing.T) {
	const idx = 70
	orig := make([]byte, 512)
	encodeSlot(orig, idx, 4, 60, []byte("committed value"))
	n := len("committed value")
	total := int(encodedSlotBytes(n))
	for off := 0; off < total; off++ {
		if off >= slotHeaderBytes+n && off < total-slotTrailer {
			continue // padding: carries nothing
		}
		for bit := uint(0); bit < 8; bit++ {
			buf := bytes.Clone(orig)
			buf[off] ^= 1 << bit
			if _, st := decodeSlot(buf, idx, 256); st == slotEmpty || st == slotOK {
				t.Fatalf("bit %d of byte %d flipped: read as %v", bit, off, st)
			}
		}
	}
	if _, st := decodeSlot(make([]byte, 512), idx, 256); st != slotEmpty {
		t.Fatalf("cleared slot read as %v, want empty", st)
	}
}

// TestSlotRewriteCutShort: a slot rewritten under a new proposal by a
// write that stopped part way (new header, old trailer) is never read as
// the new value whole. Rewriting the same value, it reads as the old
// acceptance (the value survives a new leader's crash mid-rewrite on every
// replica); rewriting another value, it holds no value (the old one was
// not chosen, or the new leader would have written it).
func TestSlotRewriteCutShort(t *testing.T) {
	payload := bytes.Repeat([]byte{0x5c}, 200)
	other := bytes.Repeat([]byte{0x3a}, 200)
	old := make([]byte, 512)
	encodeSlot(old, 9, 3, 0, payload)
	same := make([]byte, 512)
	encodeSlot(same, 9, 7, 5, payload)
	diff := make([]byte, 512)
	encodeSlot(diff, 9, 7, 5, other)
	total := int(encodedSlotBytes(len(payload)))
	// Writes and packets split a slot at multiples of slotTrailer, and
	// never inside the header (a packet is at least 256 bytes).
	for cut := slotHeaderBytes; cut < total; cut += slotTrailer {
		buf := bytes.Clone(old)
		copy(buf, same[:cut])
		v, st := decodeSlot(buf, 9, 256)
		if st != slotOK || !bytes.Equal(v.payload, payload) {
			t.Fatalf("same-value rewrite cut after %d bytes read as %v", cut, st)
		}
		if cut < total-slotTrailer && v.proposal != 3 {
			t.Fatalf("same-value rewrite cut after %d bytes read under proposal %d, want the old 3", cut, v.proposal)
		}
		buf = bytes.Clone(old)
		copy(buf, diff[:cut])
		if v, st := decodeSlot(buf, 9, 256); st == slotOK && (v.proposal != 3 || !bytes.Equal(v.payload, payload)) {
			t.Fatalf("rewrite with another value cut after %d bytes read as %v %q", cut, st, v.payload)
		}
	}
}

func TestSlotHalfWrittenIsNotComplete(t *testing.T) {
	// A follower polling a slot mid-write sees the new header but the old
	// trailer: it must not take the slot as complete.
	full := make([]byte, 512)
	encodeSlot(full, 9, 3, 0, bytes.Repeat([]byte{0xab}, 100))
	for cut := 0; cut < int(encodedSlotBytes(100)); cut++ {
		buf := make([]byte, 512)
		copy(buf, full[:cut])
		if _, st := decodeSlot(buf, 9, 256); st == slotOK {
			t.Fatalf("slot with only %d bytes written decoded as complete", cut)
		}
	}
}

func TestSealSlotInPlaceReproposes(t *testing.T) {
	buf := make([]byte, 512)
	encodeSlot(buf, 11, 2, 0, []byte("value"))
	sealSlot(buf, 11, 9, 10, 5)
	v, st := decodeSlot(buf, 11, 256)
	if st != slotOK || v.proposal != 9 || string(v.payload) != "value" {
		t.Fatalf("resealed slot = %v %+v", st, v)
	}
}

func TestCanaryDiffersAcrossRingReuse(t *testing.T) {
	for i := uint64(1); i < 10000; i++ {
		if canaryFor(i) == 0 || slotCanary(i, 3) == 0 {
			t.Fatalf("canary of %d is zero", i)
		}
		for _, c := range []uint64{16, 64, 1024} {
			if canaryFor(i) == canaryFor(i+c) || slotCanary(i, 3) == slotCanary(i+c, 3) {
				t.Fatalf("canary of %d equals canary of %d", i, i+c)
			}
		}
		if slotCanary(i, 3) == slotCanary(i, 6) {
			t.Fatalf("canary of %d is the same under proposals 3 and 6", i)
		}
	}
}
