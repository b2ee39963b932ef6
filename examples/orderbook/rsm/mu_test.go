package rsm

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// TestReplicatedThroughMu runs three replicas of the book over mu on the
// in-process fabric, proposes a generated order stream and checks that every
// replica ends with the same book and made the same trades.
func TestReplicatedThroughMu(t *testing.T) {
	const commands = 300
	members := []rdma.NodeID{1, 2, 3}
	cfg := consensus.DefaultConfig()
	cfg.Members = members
	net, err := inproc.NewNetwork(inproc.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	fabrics := map[rdma.NodeID]*inproc.Fabric{}
	for _, id := range members {
		if fabrics[id], err = net.AddNode(id, int(cfg.RegionBytes())); err != nil {
			t.Fatal(err)
		}
	}
	if err := net.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var tradesMu sync.Mutex
	trades := map[rdma.NodeID][]byte{}
	replicas := map[rdma.NodeID]*consensus.Replica{}
	sms := map[rdma.NodeID]*StateMachine{}
	for _, id := range members {
		sms[id] = New(orderbook.Config{}, func(_ consensus.Index, _ []byte, r orderbook.Result, _ error) {
			tradesMu.Lock()
			for i := range r.Trades {
				trades[id] = r.Trades[i].Append(trades[id])
			}
			tradesMu.Unlock()
		})
		r, err := consensus.New(fabrics[id], sms[id], cfg)
		if err != nil {
			t.Fatal(err)
		}
		replicas[id] = r
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx, consensus.DriveSpinYield) }()
	}
	defer func() { cancel(); wg.Wait() }()

	// The reference book applies the stream directly, once each. A proposal
	// that failed may still have been committed and is then in the log
	// twice; the book must reject the copy (client sequence numbers), so
	// every replica must still match the reference exactly.
	ref := orderbook.New(orderbook.Config{})
	var refTrades []byte
	g := orderbook.NewLoadGen(11, orderbook.LoadGenConfig{})
	at := members[0]
	var last consensus.Index
	for i := 0; i < commands; {
		cmd := g.Next(nil)
		r, _ := ref.Apply(cmd)
		for i := range r.Trades {
			refTrades = r.Trades[i].Append(refTrades)
		}
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			idx, err := replicas[at].Propose(pctx, cmd)
			pcancel()
			var nl *consensus.NotLeaderError
			if err == nil {
				last = idx
				break
			}
			if errors.As(err, &nl) && nl.Known {
				at = nl.Leader
			}
			if ctx.Err() != nil {
				t.Fatalf("command %d never committed: %v", i, err)
			}
			time.Sleep(time.Millisecond) // election under way
		}
		i++
	}

	for _, id := range members {
		for sms[id].LastIndex() < last {
			if ctx.Err() != nil {
				t.Fatalf("replica %d applied up to %d, want %d", id, sms[id].LastIndex(), last)
			}
			time.Sleep(time.Millisecond)
		}
	}
	var want bytes.Buffer
	if err := ref.Snapshot(&want); err != nil {
		t.Fatal(err)
	}
	if len(refTrades) == 0 {
		t.Fatal("the stream made no trades")
	}
	tradesMu.Lock()
	defer tradesMu.Unlock()
	for _, id := range members {
		got, _ := sms[id].Snapshot()
		if !bytes.Equal(got[indexLen:], want.Bytes()) {
			t.Errorf("replica %d's book differs from the reference book", id)
		}
		if !bytes.Equal(trades[id], refTrades) {
			t.Errorf("replica %d's trades differ from the reference trades (%d vs %d bytes)", id, len(trades[id]), len(refTrades))
		}
	}
}
