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
	// Flip a proposal bit: covered by the checksum too.
	buf[slotProposalOff] ^= 1
	if _, st := decodeSlot(buf, 5, 256); st != slotCorrupt {
		t.Fatalf("bit-flipped proposal read as %v, want corrupt", st)
	}
	buf[slotProposalOff] ^= 1
	// A length beyond the maximum is not a slot.
	binary.LittleEndian.PutUint32(buf[slotLenOff:], 100000)
	if _, st := decodeSlot(buf, 5, 256); st != slotEmpty {
		t.Fatalf("oversized length read as %v, want empty", st)
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
		if canaryFor(i) == 0 {
			t.Fatalf("canary of %d is zero", i)
		}
		for _, c := range []uint64{16, 64, 1024} {
			if canaryFor(i) == canaryFor(i+c) {
				t.Fatalf("canary of %d equals canary of %d", i, i+c)
			}
		}
	}
}
