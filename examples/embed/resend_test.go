package main

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/node"
)

// In process over rdma/inproc: every proposal gets a deadline too short
// to be sure of its outcome, and the client sends the same order again
// until one copy answers: the answer is always the fills of the order's
// single execution.
func TestResentOrdersGetTheirFillsOnce(t *testing.T) {
	cc := consensus.DefaultConfig()
	g, _, err := startGroup(context.Background(), cc, "inproc", "", node.PollSpinYield, "none")
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	l, err := g.leader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	gen := orderbook.NewLoadGen(3, orderbook.DefaultLoadGenConfig())
	b := newBook()
	resent, moved := 0, 0
	for i := range 1000 {
		cmd := gen.Next(nil)
		want := b.ApplyResult(consensus.Index(i+1), cmd, nil)
		// The deadline doubles on every resend of one order (up to a
		// second), so each order is acknowledged at last however slow the
		// host (the race detector). Leadership may move on a loaded host:
		// the client then sends to the new leader, as a real one does.
		for deadline := 20 * time.Microsecond; ; deadline = min(2*deadline, time.Second) {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			_, fills, err := l.Propose(ctx, cmd, nil)
			cancel()
			if err != nil {
				resent++
				if errors.Is(err, context.DeadlineExceeded) && l.IsLeader() {
					continue
				}
				lctx, lcancel := context.WithTimeout(context.Background(), time.Minute)
				l, err = g.leader(lctx)
				lcancel()
				if err != nil {
					t.Fatalf("order %d: %v", i+1, err)
				}
				moved++
				continue
			}
			if !bytes.Equal(fills, want) {
				t.Fatalf("order %d (after %d resends in all): fills %x, want %x", i+1, resent, fills, want)
			}
			break
		}
	}
	t.Logf("1000 orders, %d resends, leader looked up again %d times: every answer carried its order's fills of one execution", resent, moved)
}
