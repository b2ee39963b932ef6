package jepsen

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/examples/orderbook"
)

// Op is one order a client submitted: its call and return times (Unix ns)
// and, when a leader acknowledged it, the index it gave. An order whose
// client gave up has Acked false: its outcome is unknown.
type Op struct {
	Client int
	Cmd    []byte
	CallNs int64
	RetNs  int64
	Acked  bool
	Index  consensus.Index
	By     int // the node that acknowledged it
}

// Workload is clients submitting limit orders one at a time each, every
// order unique (client id, sequence number), following the leader.
type Workload struct {
	c       *Cluster
	clients int
	giveUp  time.Duration // an order unacknowledged this long is abandoned
	attempt time.Duration // one attempt at one node
	mu      sync.Mutex
	history []Op
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	// logf reports a client's failed attempts, a few per order.
	logf func(format string, a ...any)
}

// NewWorkload prepares n clients against c.
func NewWorkload(c *Cluster, n int) *Workload {
	return &Workload{c: c, clients: n, giveUp: 60 * time.Second, attempt: 3 * time.Second}
}

// Start runs the clients until Stop.
func (w *Workload) Start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	for k := 1; k <= w.clients; k++ {
		w.wg.Go(func() { w.client(ctx, k) })
	}
}

// Stop ends the clients; an order in flight is recorded as unknown.
func (w *Workload) Stop() {
	w.cancel()
	w.wg.Wait()
}

// History is every order submitted so far, in call order per client.
func (w *Workload) History() []Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Op(nil), w.history...)
}

func (w *Workload) client(ctx context.Context, k int) {
	conns := make([]*endpoint.Client, w.c.N)
	for i := range conns {
		conns[i] = w.c.NewClient(i + 1)
		defer conns[i].Close()
	}
	at := 1 + (k-1)%w.c.N
	side := orderbook.Buy
	for seq := uint64(1); ctx.Err() == nil; seq++ {
		// Alternating sides around one price: the book trades, so applying
		// an order does real work.
		side = orderbook.Side(3 - side)
		cmd := orderbook.AppendLimit(nil, uint64(k), seq, side, orderbook.GoodTillCancel, 10_000+int64(seq%7), 1+uint32(seq%5))
		op := Op{Client: k, Cmd: cmd, CallNs: time.Now().UnixNano()}
		deadline := time.Now().Add(w.giveUp)
		tries := 0
		for ctx.Err() == nil && time.Now().Before(deadline) {
			actx, cancel := context.WithTimeout(ctx, w.attempt)
			t, b, err := conns[at-1].Call(actx, endpoint.ReqPropose, cmd)
			cancel()
			var idx consensus.Index
			if err == nil {
				idx, err = endpoint.DecodeProposeAnswer(t, b)
			}
			if err == nil {
				op.RetNs, op.Acked, op.Index, op.By = time.Now().UnixNano(), true, idx, at
				break
			}
			if w.logf != nil && tries < 3 {
				w.logf("client %d order %d at n%d: %v", k, seq, at, err)
			}
			tries++
			var nl *consensus.NotLeaderError
			if errors.As(err, &nl) && nl.Known && int(nl.Leader) != at && int(nl.Leader) >= 1 && int(nl.Leader) <= w.c.N {
				at = int(nl.Leader)
				continue
			}
			// Unknown outcome, no leader known, node down: the same bytes
			// go to the next node (the book rejects a duplicate sequence).
			at = at%w.c.N + 1
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		w.mu.Lock()
		w.history = append(w.history, op)
		w.mu.Unlock()
		// An abandoned order's sequence number stays used, as a real
		// client's would.
	}
}
