package rsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
)

// feed applies n generated commands, two per index as a batched log would.
func feed(sms []*StateMachine, g *orderbook.LoadGen, first consensus.Index, n int) consensus.Index {
	var cmd []byte
	idx := first
	for i := 0; i < n; i++ {
		cmd = g.Next(cmd[:0])
		for _, sm := range sms {
			sm.Apply(idx, cmd)
		}
		if i%2 == 1 {
			idx++
		}
	}
	return idx
}

func TestReplicasAgreeAndSnapshotRestores(t *testing.T) {
	var trades [2][]byte
	record := func(k int) ResultFunc {
		return func(_ consensus.Index, _ []byte, r orderbook.Result, err error) {
			for i := range r.Trades {
				trades[k] = r.Trades[i].Append(trades[k])
			}
		}
	}
	a, b := New(orderbook.Config{}, record(0)), New(orderbook.Config{}, record(1))
	g := orderbook.NewLoadGen(7, orderbook.LoadGenConfig{})
	idx := feed([]*StateMachine{a, b}, g, 1, 4000)
	if !bytes.Equal(trades[0], trades[1]) || len(trades[0]) == 0 {
		t.Fatalf("replicas produced different trades (%d vs %d bytes)", len(trades[0]), len(trades[1]))
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	c := New(orderbook.Config{}, nil)
	if err := c.Restore(a.LastIndex()-1, snap); !errors.Is(err, ErrIndexMismatch) {
		t.Fatalf("restore below the snapshot's last command: %v", err)
	}
	// Entries without commands (empty leader entries) may follow the last
	// command the snapshot holds.
	if err := c.Restore(a.LastIndex()+3, snap); err != nil || c.LastIndex() != a.LastIndex()+3 {
		t.Fatalf("restore past empty entries: %v, last index %d", err, c.LastIndex())
	}
	if err := c.Restore(a.LastIndex(), snap); err != nil {
		t.Fatal(err)
	}
	feed([]*StateMachine{a, c}, g, idx, 4000)
	sa, _ := a.Snapshot()
	sc, _ := c.Snapshot()
	if !bytes.Equal(sa, sc) {
		t.Fatal("restored replica diverged")
	}
	var resting int
	c.Read(func(e *orderbook.Engine) { resting = e.RestingOrders() })
	if resting == 0 || a.LastIndex() != c.LastIndex() {
		t.Fatalf("resting %d, last index %d vs %d", resting, a.LastIndex(), c.LastIndex())
	}
}

func TestRejectedCommandIsReportedNotApplied(t *testing.T) {
	var gotErr error
	sm := New(orderbook.Config{}, func(_ consensus.Index, _ []byte, _ orderbook.Result, err error) { gotErr = err })
	sm.Apply(1, []byte{42, 1, 2})
	if !errors.Is(gotErr, orderbook.ErrMalformed) || sm.Rejected() != 1 {
		t.Fatalf("err %v, rejected %d", gotErr, sm.Rejected())
	}
	sm.Apply(2, orderbook.AppendLimit(nil, 1, 1, orderbook.Buy, orderbook.GoodTillCancel, 100, 1))
	if gotErr != nil || sm.LastIndex() != 2 {
		t.Fatalf("err %v, last index %d", gotErr, sm.LastIndex())
	}
	bad, _ := sm.Snapshot()
	bad[len(bad)-1] ^= 1
	before, _ := sm.Snapshot()
	if err := sm.Restore(2, bad); !errors.Is(err, orderbook.ErrBadSnapshot) {
		t.Fatalf("corrupt snapshot: %v", err)
	}
	after, _ := sm.Snapshot()
	if !bytes.Equal(before, after) {
		t.Fatal("failed restore changed the book")
	}
}
