package wal

import (
	"encoding/binary"
	"hash/crc32"
)

// HeaderBytes is the fixed part of a record: length, crc, index.
const HeaderBytes = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var le = binary.LittleEndian

// recordCRC covers the index too, so a valid payload at the wrong place
// in the sequence does not verify.
// The index bytes go through the table by hand: a stack array handed to
// crc32 would escape and cost an allocation per record.
func recordCRC(index uint64, payload []byte) uint32 {
	crc := ^uint32(0)
	for i := range 8 {
		crc = castagnoli[byte(crc)^byte(index>>(8*i))] ^ crc>>8
	}
	return crc32.Update(^crc, castagnoli, payload)
}

// appendRecord encodes one record onto buf.
func appendRecord(buf []byte, index uint64, payload []byte) []byte {
	var h [HeaderBytes]byte
	le.PutUint32(h[0:], uint32(len(payload)))
	le.PutUint32(h[4:], recordCRC(index, payload))
	le.PutUint64(h[8:], index)
	buf = append(buf, h[:]...)
	return append(buf, payload...)
}

// decodeStatus says what lies at an offset.
type decodeStatus int

const (
	recordOK    decodeStatus = iota
	recordZero               // an all-zero header: the clean end of written data
	recordShort              // the data ends inside the record
	recordBad                // the header or crc does not verify
)

// decodeRecord reads the record at data[off:]. The payload aliases data.
func decodeRecord(data []byte, off int) (index uint64, payload []byte, n int, st decodeStatus) {
	if off < 0 || off > len(data) {
		return 0, nil, 0, recordShort
	}
	rest := data[off:]
	if len(rest) < HeaderBytes {
		if allZero(rest) {
			return 0, nil, 0, recordZero
		}
		return 0, nil, 0, recordShort
	}
	if allZero(rest[:HeaderBytes]) {
		return 0, nil, 0, recordZero
	}
	plen := le.Uint32(rest[0:])
	crc := le.Uint32(rest[4:])
	index = le.Uint64(rest[8:])
	if uint64(plen) > uint64(len(rest)-HeaderBytes) {
		return index, nil, 0, recordShort
	}
	payload = rest[HeaderBytes : HeaderBytes+int(plen)]
	if recordCRC(index, payload) != crc {
		return index, nil, 0, recordBad
	}
	return index, payload, HeaderBytes + int(plen), recordOK
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if le.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// findValidRecord looks for any verifying record at or after from whose
// index is at least minIndex: evidence that data was durable beyond a bad
// spot. The index check first keeps the scan cheap over noise and zeros.
func findValidRecord(data []byte, from int, minIndex uint64) (int, bool) {
	const maxAheadIndexes = 1 << 32
	for off := from; off+HeaderBytes <= len(data); off++ {
		idx := le.Uint64(data[off+8:])
		if idx < minIndex || idx-minIndex > maxAheadIndexes {
			continue
		}
		if _, _, _, st := decodeRecord(data, off); st == recordOK {
			return off, true
		}
	}
	return 0, false
}
