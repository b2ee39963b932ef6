package wal

import (
	"bytes"
	"testing"
)

// FuzzDecodeRecord: the decoder never panics, never reads past its input,
// and what it accepts re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	valid := appendRecord(nil, 1, []byte("order 1: buy 100 @ 10.25"))
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(valid[:HeaderBytes])
	f.Add(make([]byte, 32))
	f.Add(append(appendRecord(nil, 2, nil), 0, 0, 0))
	flipped := bytes.Clone(valid)
	flipped[20] ^= 1
	f.Add(flipped)
	huge := bytes.Clone(valid)
	huge[3] = 0xff
	f.Add(huge)
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, payload, n, st := decodeRecord(data, 0)
		switch st {
		case recordOK:
			if n > len(data) || n != HeaderBytes+len(payload) {
				t.Fatalf("n %d for %d input bytes and %d payload bytes", n, len(data), len(payload))
			}
			if re := appendRecord(nil, idx, payload); !bytes.Equal(re, data[:n]) {
				t.Fatalf("re-encoding differs: %x vs %x", re, data[:n])
			}
		case recordZero:
			if !allZero(data[:min(len(data), HeaderBytes)]) {
				t.Fatal("recordZero on non-zero header")
			}
		}
		findValidRecord(data, 0, 1)
	})
}
