package consensus

import (
	"bytes"
	"testing"
)

// FuzzDecodeSlot: whatever bytes a ring position holds (a peer's write, a
// write cut short, flipped bits), decodeSlot never panics, and a slot it
// calls whole re-encodes to a slot that decodes to the same value.
func FuzzDecodeSlot(f *testing.F) {
	const maxPayload = 256
	stride := int(encodedSlotBytes(maxPayload))
	whole := make([]byte, stride)
	encodeSlot(whole, 9, 4, 7, []byte("order 42 buy 100 @ 17.25"))
	f.Add(whole, uint64(9))
	f.Add(whole, uint64(9+64))
	f.Add(make([]byte, stride), uint64(1))
	cut := bytes.Clone(whole)
	copy(cut[slotHeaderBytes:], bytes.Repeat([]byte{0xee}, 16))
	f.Add(cut, uint64(9))
	f.Fuzz(func(t *testing.T, data []byte, index uint64) {
		buf := make([]byte, stride)
		copy(buf, data)
		v, st := decodeSlot(buf, index, maxPayload)
		if st != slotOK {
			return
		}
		if v.index != index || len(v.payload) > maxPayload {
			t.Fatalf("whole slot for %d decoded as index %d with %d bytes", index, v.index, len(v.payload))
		}
		again := make([]byte, stride)
		encodeSlot(again, v.index, v.proposal, v.hint, v.payload)
		w, st2 := decodeSlot(again, index, maxPayload)
		if st2 != slotOK || w.proposal != v.proposal || !bytes.Equal(w.payload, v.payload) {
			t.Fatalf("re-encoded slot decodes as %v", st2)
		}
	})
}
