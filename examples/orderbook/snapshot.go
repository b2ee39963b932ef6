package orderbook

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// Snapshot encoding, little-endian:
//
//	magic "MUOB" | version u16 | tradeSeq u64 | appliedCommands u64
//	clientCount u32 | clientCount x (client u64 | lastSeq u64), ascending client
//	orderCount u32 | orderCount x (side u8 | priceTicks i64 | openLots u32 | client u64 | seq u64)
//	crc32c u32 of everything before it
//
// Orders are listed bids first, then asks, each side best price first and
// oldest first within a price, so restoring them in order rebuilds the same
// queues. The encoding is canonical: equal books give equal bytes.
const (
	snapshotMagic   = "MUOB"
	snapshotVersion = 1
	snapClientLen   = 16
	snapOrderLen    = 1 + 8 + 4 + 8 + 8
)

// ErrBadSnapshot: Restore was given bytes that are not a valid snapshot.
var ErrBadSnapshot = errors.New("orderbook: bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot writes the engine's whole state to w.
func (e *Engine) Snapshot(w io.Writer) error {
	clients := make([]uint64, 0, len(e.lastSeq))
	for c := range e.lastSeq {
		clients = append(clients, c)
	}
	slices.Sort(clients)
	n := len(e.byRef)
	b := make([]byte, 0, 4+2+8+8+4+len(clients)*snapClientLen+4+n*snapOrderLen+4)
	b = append(b, snapshotMagic...)
	b = binary.LittleEndian.AppendUint16(b, snapshotVersion)
	b = binary.LittleEndian.AppendUint64(b, e.tradeSeq)
	b = binary.LittleEndian.AppendUint64(b, e.appliedCommands)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(clients)))
	for _, c := range clients {
		b = binary.LittleEndian.AppendUint64(b, c)
		b = binary.LittleEndian.AppendUint64(b, e.lastSeq[c])
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for _, s := range [...]Side{Buy, Sell} {
		ladder := e.sides[s-1].ladder
		for i := len(ladder) - 1; i >= 0; i-- {
			for oi := e.levels[ladder[i].level].head; oi != nilIndex; oi = e.orders[oi].next {
				o := &e.orders[oi]
				b = append(b, byte(o.side))
				b = binary.LittleEndian.AppendUint64(b, uint64(o.priceTicks))
				b = binary.LittleEndian.AppendUint32(b, o.openLots)
				b = binary.LittleEndian.AppendUint64(b, o.ref.Client)
				b = binary.LittleEndian.AppendUint64(b, o.ref.Seq)
			}
		}
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	_, err := w.Write(b)
	return err
}

// Restore replaces the engine's state with the snapshot read from r. It
// reads r to EOF. On error the engine is unchanged and the error wraps
// ErrBadSnapshot (or is the reader's error).
func (e *Engine) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("orderbook: reading snapshot: %w", err)
	}
	fresh, err := decodeSnapshot(b, e.cfg)
	if err != nil {
		return err
	}
	*e = *fresh
	return nil
}

func decodeSnapshot(b []byte, cfg Config) (*Engine, error) {
	const fixedLen = 4 + 2 + 8 + 8 + 4 + 4 + 4
	if len(b) < fixedLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte minimum", ErrBadSnapshot, len(b), fixedLen)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("%w: checksum %08x, stored %08x", ErrBadSnapshot, got, sum)
	}
	if string(body[:4]) != snapshotMagic {
		return nil, fmt.Errorf("%w: magic %q", ErrBadSnapshot, body[:4])
	}
	if v := binary.LittleEndian.Uint16(body[4:]); v != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrBadSnapshot, v, snapshotVersion)
	}
	p := body[6:]
	tradeSeq := binary.LittleEndian.Uint64(p)
	applied := binary.LittleEndian.Uint64(p[8:])
	nClients := int(binary.LittleEndian.Uint32(p[16:]))
	p = p[20:]
	if len(p) < nClients*snapClientLen+4 {
		return nil, fmt.Errorf("%w: truncated in client table (%d clients)", ErrBadSnapshot, nClients)
	}
	cfg.ClientCapacity = max(cfg.ClientCapacity, nClients)
	e := New(cfg)
	e.tradeSeq, e.appliedCommands = tradeSeq, applied
	var prevClient uint64
	for i := 0; i < nClients; i++ {
		c, seq := binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:])
		p = p[snapClientLen:]
		if c <= prevClient || seq == 0 {
			return nil, fmt.Errorf("%w: client entry %d (client %d, seq %d) out of order or empty", ErrBadSnapshot, i, c, seq)
		}
		prevClient = c
		e.lastSeq[c] = seq
	}
	nOrders := int(binary.LittleEndian.Uint32(p))
	p = p[4:]
	if len(p) != nOrders*snapOrderLen {
		return nil, fmt.Errorf("%w: %d bytes of orders, want %d for %d orders", ErrBadSnapshot, len(p), nOrders*snapOrderLen, nOrders)
	}
	prevSide, prevKey := Buy, int64(0)
	for i := 0; i < nOrders; i++ {
		o := order{
			side:       Side(p[0]),
			priceTicks: int64(binary.LittleEndian.Uint64(p[1:])),
			openLots:   binary.LittleEndian.Uint32(p[9:]),
			ref:        OrderRef{Client: binary.LittleEndian.Uint64(p[13:]), Seq: binary.LittleEndian.Uint64(p[21:])},
		}
		p = p[snapOrderLen:]
		if o.side != Buy && o.side != Sell || o.priceTicks <= 0 || o.openLots == 0 {
			return nil, fmt.Errorf("%w: order %d: side %d, price %d, open %d", ErrBadSnapshot, i, o.side, o.priceTicks, o.openLots)
		}
		key := sideKey(o.side, o.priceTicks)
		switch {
		case i == 0 || o.side != prevSide:
			if o.side < prevSide {
				return nil, fmt.Errorf("%w: order %d: bids after asks", ErrBadSnapshot, i)
			}
		case key > prevKey:
			return nil, fmt.Errorf("%w: order %d: price %d better than the order before it", ErrBadSnapshot, i, o.priceTicks)
		}
		prevSide, prevKey = o.side, key
		if last, ok := e.lastSeq[o.ref.Client]; !ok || o.ref.Seq == 0 || o.ref.Seq > last {
			return nil, fmt.Errorf("%w: order %d: ref %+v not covered by the client table", ErrBadSnapshot, i, o.ref)
		}
		if _, dup := e.byRef[o.ref]; dup {
			return nil, fmt.Errorf("%w: order %d: ref %+v listed twice", ErrBadSnapshot, i, o.ref)
		}
		oi := e.allocOrder()
		e.orders[oi] = o
		e.rest(oi)
	}
	bid, okB := e.Best(Buy)
	ask, okA := e.Best(Sell)
	if okB && okA && bid.PriceTicks >= ask.PriceTicks {
		return nil, fmt.Errorf("%w: crossed book, bid %d >= ask %d", ErrBadSnapshot, bid.PriceTicks, ask.PriceTicks)
	}
	return e, nil
}
