package main

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/examples/orderbook/rsm"
)

// book is the replicated order book whose result for each order is its
// fills, so Propose hands the matching engine's answer to the caller. It
// remembers the fills of recent orders: a client that resends an order
// whose outcome a crash left unknown gets the fills of the first
// execution (the engine rejects the copy as a duplicate), so every
// acknowledged order's fills reach it exactly once.
type book struct {
	sm  *rsm.StateMachine
	out []byte // ApplyResult's buffer while an order is applied
	cmd orderbook.Command

	recent map[orderbook.OrderRef][]byte
	order  []orderbook.OrderRef // ring of recent's keys, oldest first
	next   int
}

// recentOrders bounds the fills kept for resends.
const recentOrders = 1 << 16

func newBook() *book {
	b := &book{recent: map[orderbook.OrderRef][]byte{}, order: make([]orderbook.OrderRef, recentOrders)}
	b.sm = rsm.New(orderbook.DefaultConfig(), b.result)
	return b
}

// result runs inside rsm's Apply, once per command.
func (b *book) result(_ consensus.Index, cmd []byte, r orderbook.Result, err error) {
	if orderbook.Decode(cmd, &b.cmd) != nil {
		b.out = appendFills(b.out, r, err)
		return
	}
	ref := b.cmd.Ref()
	if errors.Is(err, orderbook.ErrDuplicate) {
		if f, ok := b.recent[ref]; ok {
			b.out = append(b.out, f...)
			return
		}
	}
	start := len(b.out)
	b.out = appendFills(b.out, r, err)
	if err == nil {
		delete(b.recent, b.order[b.next])
		b.order[b.next], b.next = ref, (b.next+1)%recentOrders
		b.recent[ref] = slices.Clone(b.out[start:])
	}
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
