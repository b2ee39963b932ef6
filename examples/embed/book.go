package main

import (
	"encoding/binary"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/examples/orderbook/rsm"
)

// book is the replicated order book whose result for each order is its
// fills, so Propose hands the matching engine's answer to the caller.
type book struct {
	sm  *rsm.StateMachine
	out []byte // ApplyResult's buffer while an order is applied
}

func newBook() *book {
	b := &book{}
	b.sm = rsm.New(orderbook.DefaultConfig(), func(_ consensus.Index, _ []byte, r orderbook.Result, err error) {
		b.out = appendFills(b.out, r, err)
	})
	return b
}

// appendFills encodes an order's outcome: 1 if the engine rejected it
// (a duplicate, malformed, an unknown order), else 0, the filled lots
// and each trade.
func appendFills(dst []byte, r orderbook.Result, err error) []byte {
	if err != nil {
		return append(dst, 1)
	}
	dst = append(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, r.FilledLots)
	for i := range r.Trades {
		dst = r.Trades[i].Append(dst)
	}
	return dst
}

func (b *book) Apply(i consensus.Index, cmd []byte) { b.sm.Apply(i, cmd) }

func (b *book) ApplyResult(i consensus.Index, cmd, out []byte) []byte {
	b.out = out
	b.sm.Apply(i, cmd)
	out, b.out = b.out, nil
	return out
}

func (b *book) Snapshot() ([]byte, error)                 { return b.sm.Snapshot() }
func (b *book) Restore(i consensus.Index, s []byte) error { return b.sm.Restore(i, s) }
