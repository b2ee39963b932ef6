package inproc

import (
	"context"
	"encoding/binary"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/conformance"
)

// pinger bounces a counter with its partner: each node writes n+1 into the
// other's word when it sees n in its own (odd for node 1, even for node 2).
type pinger struct {
	f       *Fabric
	peer    rdma.NodeID
	start   bool
	sent    uint64
	limit   uint64
	done    chan struct{}
	errs    int
	cq      [8]rdma.Completion
	wr      [1]rdma.WorkRequest
	closed  bool
	timerNs int64
}

func (p *pinger) Step(now int64) int64 {
	for {
		n := p.f.Poll(p.cq[:])
		for _, c := range p.cq[:n] {
			if c.Status != rdma.StatusSuccess {
				p.errs++
			}
		}
		if n < len(p.cq) {
			break
		}
	}
	mem := p.f.Region().Bytes()
	got := binary.LittleEndian.Uint64(mem[0:])
	if (p.start && p.sent == 0) || (got > p.sent && got < p.limit) {
		binary.LittleEndian.PutUint64(mem[64:], got+1)
		p.wr[0] = rdma.WorkRequest{Op: rdma.OpWrite, LocalOffset: 64, RemoteOffset: 0, Length: 8}
		if _, err := p.f.Conn(p.peer, rdma.PlaneReplication).Post(p.wr[:]); err != nil {
			p.errs++
		}
		p.sent = got + 1
	}
	if got >= p.limit-1 && !p.closed {
		p.closed = true
		close(p.done)
	}
	// A timer far off: progress must come from wake-ups.
	return now + p.timerNs
}

func TestDrivePingPong(t *testing.T) {
	c := backend{}.Start(t, conformance.Options{Nodes: 2, RegionBytes: 4096, TransportTimeoutNs: 1e9}).(cluster)
	const limit = 2000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p1 := &pinger{f: c.net.Node(1), peer: 2, start: true, limit: limit, done: make(chan struct{}), timerNs: math.MaxInt64 / 2}
	p2 := &pinger{f: c.net.Node(2), peer: 1, limit: limit, done: make(chan struct{}), timerNs: math.MaxInt64 / 2}
	var wg sync.WaitGroup
	for _, p := range []*pinger{p1, p2} {
		wg.Add(1)
		go func() { defer wg.Done(); Drive(ctx, p.f, p, DriveOptions{}) }()
	}
	start := time.Now()
	select {
	case <-p1.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("ping-pong stuck: node 1 sent %d, node 2 sent %d", p1.sent, p2.sent)
	}
	took := time.Since(start)
	cancel()
	wg.Wait()
	if p1.errs+p2.errs != 0 {
		t.Fatalf("%d failed requests", p1.errs+p2.errs)
	}
	t.Logf("%d one-way hops in %v (%v each), driven by wake-ups alone", limit, took, took/limit)
}
