package wal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, p := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{0}, 100), bytes.Repeat([]byte("ab"), 3000)} {
		buf := appendRecord(nil, 42, p)
		idx, got, n, st := decodeRecord(buf, 0)
		if st != recordOK || idx != 42 || n != len(buf) || !bytes.Equal(got, p) {
			t.Fatalf("payload of %d bytes: status %v index %d n %d", len(p), st, idx, n)
		}
	}
}

func TestRecordCRCIsCastagnoliOverIndexAndPayload(t *testing.T) {
	p := []byte("sell 5 @ 99.5")
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], 0x0102030405060708)
	want := crc32.Checksum(append(b[:], p...), crc32.MakeTable(crc32.Castagnoli))
	if got := recordCRC(0x0102030405060708, p); got != want {
		t.Fatalf("recordCRC %08x, want %08x", got, want)
	}
}

func TestRecordDecodeEnds(t *testing.T) {
	rec := appendRecord(nil, 7, []byte("payload"))
	if _, _, _, st := decodeRecord(make([]byte, 64), 0); st != recordZero {
		t.Errorf("zeros: status %v, want recordZero", st)
	}
	if _, _, _, st := decodeRecord(make([]byte, 5), 0); st != recordZero {
		t.Errorf("short zeros: status %v, want recordZero", st)
	}
	for cut := 1; cut < len(rec); cut++ {
		if _, _, _, st := decodeRecord(rec[:cut], 0); st != recordShort && st != recordBad {
			t.Errorf("cut at %d: status %v, want short or bad", cut, st)
		}
	}
	for i := range rec {
		bad := bytes.Clone(rec)
		bad[i] ^= 0x10
		if _, _, _, st := decodeRecord(bad, 0); st == recordOK {
			t.Errorf("flip at byte %d: record still verifies", i)
		}
	}
}

func TestFindValidRecord(t *testing.T) {
	buf := append(make([]byte, 33), appendRecord(nil, 9, []byte("later"))...)
	buf = append(buf, make([]byte, 100)...)
	if off, ok := findValidRecord(buf, 0, 5); !ok || off != 33 {
		t.Fatalf("found %v at %d, want true at 33", ok, off)
	}
	if _, ok := findValidRecord(buf, 0, 10); ok {
		t.Fatal("found a record below minIndex")
	}
}
