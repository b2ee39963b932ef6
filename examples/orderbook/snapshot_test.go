package orderbook

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

type snapOrder struct {
	side       Side
	priceTicks int64
	openLots   uint32
	ref        OrderRef
}

// buildSnapshot encodes a snapshot by hand, with a valid checksum, so the
// semantic checks of Restore can be reached.
func buildSnapshot(magic string, version uint16, clients [][2]uint64, orders []snapOrder) []byte {
	b := append([]byte(nil), magic...)
	b = binary.LittleEndian.AppendUint16(b, version)
	b = binary.LittleEndian.AppendUint64(b, 10) // trade seq
	b = binary.LittleEndian.AppendUint64(b, 20) // applied commands
	b = binary.LittleEndian.AppendUint32(b, uint32(len(clients)))
	for _, c := range clients {
		b = binary.LittleEndian.AppendUint64(b, c[0])
		b = binary.LittleEndian.AppendUint64(b, c[1])
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(orders)))
	for _, o := range orders {
		b = append(b, byte(o.side))
		b = binary.LittleEndian.AppendUint64(b, uint64(o.priceTicks))
		b = binary.LittleEndian.AppendUint32(b, o.openLots)
		b = binary.LittleEndian.AppendUint64(b, o.ref.Client)
		b = binary.LittleEndian.AppendUint64(b, o.ref.Seq)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func TestRestoreChecksMeaning(t *testing.T) {
	clients := [][2]uint64{{1, 10}, {2, 10}}
	good := []snapOrder{
		{Buy, 100, 5, OrderRef{1, 1}}, {Buy, 100, 3, OrderRef{2, 2}}, {Buy, 99, 1, OrderRef{1, 3}},
		{Sell, 101, 2, OrderRef{2, 4}}, {Sell, 105, 2, OrderRef{1, 5}},
	}
	e := New(Config{})
	snap := buildSnapshot(snapshotMagic, snapshotVersion, clients, good)
	if err := e.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("valid hand-made snapshot: %v", err)
	}
	// The hand encoding is the canonical one.
	if !bytes.Equal(snap, snapshotBytes(t, e)) {
		t.Fatal("hand-made snapshot and engine snapshot differ")
	}
	// Time priority survived: client 1's bid at 100 is first in the queue.
	r, err := e.Apply(AppendMarket(nil, 3, 1, Sell, 6))
	if err != nil || len(r.Trades) != 2 || r.Trades[0].Maker != (OrderRef{1, 1}) || r.Trades[1].Maker != (OrderRef{2, 2}) {
		t.Fatalf("after restore: %+v %v", r.Trades, err)
	}

	with := func(i int, o snapOrder) []snapOrder {
		os := append([]snapOrder(nil), good...)
		os[i] = o
		return os
	}
	cases := map[string][]byte{
		"magic":             buildSnapshot("MUXX", snapshotVersion, clients, good),
		"version":           buildSnapshot(snapshotMagic, 99, clients, good),
		"crossed":           buildSnapshot(snapshotMagic, snapshotVersion, clients, with(3, snapOrder{Sell, 100, 2, OrderRef{2, 4}})),
		"worse then better": buildSnapshot(snapshotMagic, snapshotVersion, clients, with(2, snapOrder{Buy, 101, 1, OrderRef{1, 3}})),
		"asks then bids":    buildSnapshot(snapshotMagic, snapshotVersion, clients, append(good[3:], good[:3]...)),
		"zero lots":         buildSnapshot(snapshotMagic, snapshotVersion, clients, with(1, snapOrder{Buy, 100, 0, OrderRef{2, 2}})),
		"bad side":          buildSnapshot(snapshotMagic, snapshotVersion, clients, with(4, snapOrder{3, 105, 2, OrderRef{1, 5}})),
		"zero price":        buildSnapshot(snapshotMagic, snapshotVersion, clients, with(2, snapOrder{Buy, 0, 1, OrderRef{1, 3}})),
		"duplicate ref":     buildSnapshot(snapshotMagic, snapshotVersion, clients, with(2, snapOrder{Buy, 99, 1, OrderRef{1, 1}})),
		"unknown client":    buildSnapshot(snapshotMagic, snapshotVersion, clients, with(2, snapOrder{Buy, 99, 1, OrderRef{7, 1}})),
		"seq past client":   buildSnapshot(snapshotMagic, snapshotVersion, clients, with(2, snapOrder{Buy, 99, 1, OrderRef{1, 11}})),
		"clients unsorted":  buildSnapshot(snapshotMagic, snapshotVersion, [][2]uint64{{2, 10}, {1, 10}}, good),
		"client seq zero":   buildSnapshot(snapshotMagic, snapshotVersion, [][2]uint64{{1, 10}, {2, 0}}, nil),
	}
	keep := snapshotBytes(t, e)
	for name, b := range cases {
		err := e.Restore(bytes.NewReader(b))
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
		}
	}
	if !bytes.Equal(keep, snapshotBytes(t, e)) {
		t.Fatal("a rejected snapshot changed the engine")
	}
}
