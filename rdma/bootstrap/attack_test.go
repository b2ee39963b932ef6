package bootstrap

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

// The attacks here run against a plain-TCP bootstrap, the weakest setting
// (security.insecure): whoever can reach the listener may send a valid
// hello. Even so, an unfinished handshake must never cut the link in
// service nor hold up the real one.

// connectedPair is node 2 listening and node 1 connected to it once.
func connectedPair(t *testing.T, timeout time.Duration) (ln *testNode, d *Bootstrapper, dq *fakeQPs) {
	t.Helper()
	ln = startNode(t, 1, 2, []rdma.NodeID{1}, timeout)
	d, dq = dialerOnly(t, 1, 1, []rdma.NodeID{2}, timeout)
	if _, err := d.Exchange(context.Background(), 2, ln.addr()); err != nil {
		t.Fatal(err)
	}
	if r := ln.nextInbound(t); r.err != nil {
		t.Fatal(r.err)
	}
	return ln, d, dq
}

// forgeHello opens a connection to addr, sends a valid hello as from and
// reads the listener's answer (its hello): everything a handshake needs
// but the final commit.
func forgeHello(t *testing.T, addr string, cluster uint64, from, to rdma.NodeID) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(appendFrame(nil, kindHello, validHello(cluster, from, to))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := readFrame(c)
	if err != nil || f.kind != kindHello {
		t.Fatalf("forged hello: listener answered %v, %v; want its hello", f.kind, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// Attack: a hello as node 1 followed by a hang-up. The listener prepared
// queue pairs for it, releases them, and the link in service stays.
func TestAttackHelloThenHangUpKeepsLink(t *testing.T) {
	ln, _, _ := connectedPair(t, time.Second)
	before, remote := ln.qps.inService(1), mustRemote(t, ln.b, 1)

	forgeHello(t, ln.addr(), 1, 1, 2).Close()
	if r := ln.nextInbound(t); !errors.Is(r.err, ErrBadHandshake) {
		t.Fatalf("listener outcome %v, want ErrBadHandshake (truncated)", r.err)
	}
	if got := ln.qps.inService(1); !slices.Equal(got, before) {
		t.Errorf("queue pairs in service changed from %v to %v", before, got)
	}
	if got := mustRemote(t, ln.b, 1); !slices.Equal(got, remote) {
		t.Errorf("Remote(1) changed from %v to %v", remote, got)
	}
	if pre, ab := ln.qps.count(1); pre != 2 || ab != 1 {
		t.Errorf("%d prepares and %d aborts towards node 1, want 2 and 1", pre, ab)
	}
	ln.qps.requireClean(t, 1)
}

// Attack: a hello as node 1 held open without ever committing. The real
// node 1 redials meanwhile and completes at once, not after the forged
// attempt's timeout; the forged attempt then ends without touching the
// link the real one put in service.
func TestAttackOpenHandshakeDoesNotBlockRealOne(t *testing.T) {
	const timeout = 2 * time.Second
	ln, d, dq := connectedPair(t, timeout)
	hold := forgeHello(t, ln.addr(), 1, 1, 2)
	defer hold.Close()

	start := time.Now()
	second, err := d.Exchange(context.Background(), 2, ln.addr())
	if err != nil {
		t.Fatalf("real redial beside an open forged attempt: %v", err)
	}
	if took := time.Since(start); took > timeout/2 {
		t.Errorf("real redial took %v beside an open forged attempt (timeout %v)", took, timeout)
	}
	if r := ln.nextInbound(t); r.err != nil || r.peer != 1 {
		t.Fatalf("first outcome %+v, want the real redial's success", r)
	}
	// The listener activates after its last frame, so after its outcome.
	if !slices.Equal(second, ln.qps.inService(1)) {
		t.Errorf("dialer connected to %v, listener has %v in service", second, ln.qps.inService(1))
	}
	inService := ln.qps.inService(1)
	hold.Close()
	if r := ln.nextInbound(t); r.err == nil {
		t.Fatal("the forged attempt succeeded")
	}
	if got := ln.qps.inService(1); !slices.Equal(got, inService) {
		t.Errorf("the forged attempt's end changed the queue pairs in service")
	}
	if got, want := mustRemote(t, ln.b, 1), dq.inService(2); !slices.Equal(got, want) {
		t.Errorf("Remote(1) = %v, want the real redial's %v", got, want)
	}
	ln.qps.requireClean(t, 1)
}

// Attack: many hellos as node 1 held open. Beyond maxAttemptsPerPeer the
// listener refuses without making queue pairs.
func TestAttackAttemptFloodMakesNoQueuePairs(t *testing.T) {
	ln, _, _ := connectedPair(t, 2*time.Second)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range maxAttemptsPerPeer {
		held = append(held, forgeHello(t, ln.addr(), 1, 1, 2))
	}
	c, err := net.Dial("tcp", ln.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(appendFrame(nil, kindHello, validHello(1, 1, 2)))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := readFrame(c)
	if err != nil || f.kind != kindReject {
		t.Fatalf("attempt beyond the limit: got %v, %v; want a reject", f.kind, err)
	}
	if r := ln.nextInbound(t); !errors.Is(r.err, ErrBusy) {
		t.Errorf("listener outcome %v, want ErrBusy", r.err)
	}
	if pre, _ := ln.qps.count(1); pre != 1+maxAttemptsPerPeer {
		t.Errorf("%d prepares towards node 1, want %d", pre, 1+maxAttemptsPerPeer)
	}
}

// Attack: a flood of idle connections. Beyond MaxInbound each is closed at
// once, without a goroutine; once the idle ones time out a real handshake
// goes through.
func TestAttackConnectionFlood(t *testing.T) {
	const limit, extra, timeout = 8, 32, time.Second
	n := &testNode{id: 2, qps: newFakeQPs(2), in: make(chan inbound, limit+extra+4)}
	b, err := New(Config{ClusterID: 1, Self: 2, Peers: []rdma.NodeID{1}, Timeout: timeout,
		Peering: n.qps.peering(), MaxInbound: limit,
		OnInbound: func(_ net.Addr, peer rdma.NodeID, err error) { n.in <- inbound{peer, err} }})
	if err != nil {
		t.Fatal(err)
	}
	n.b = b
	if n.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, n.ln) }()
	defer func() { cancel(); <-done }()

	goroutines := runtime.NumGoroutine()
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range limit {
		c, err := net.Dial("tcp", n.addr())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// The listener accepts in order: once every idle one holds a token,
	// each further connection is refused.
	deadline := time.Now().Add(5 * time.Second)
	for len(b.inbound) < limit && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	for range extra {
		c, err := net.Dial("tcp", n.addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Errorf("connection beyond the limit: read %v, want it closed at once", err)
		}
		c.Close()
	}
	if g := runtime.NumGoroutine(); g > goroutines+limit+4 {
		t.Errorf("%d goroutines with %d idle connections, were %d", g, limit, goroutines)
	}
	// The extra ones were refused, the idle ones time out; the real node 1
	// then connects.
	busy, timedOut := 0, 0
	for range limit + extra {
		switch r := n.nextInbound(t); {
		case errors.Is(r.err, ErrBusy):
			busy++
		case errors.Is(r.err, ErrHandshakeTimeout):
			timedOut++
		default:
			t.Errorf("outcome %v, want ErrBusy or ErrHandshakeTimeout", r.err)
		}
	}
	if busy != extra || timedOut != limit {
		t.Errorf("%d refused and %d timed out, want %d and %d", busy, timedOut, extra, limit)
	}
	d, _ := dialerOnly(t, 1, 1, []rdma.NodeID{2}, time.Second)
	if _, err := d.Exchange(context.Background(), 2, n.addr()); err != nil {
		t.Fatalf("real handshake after the flood: %v", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func mustRemote(t *testing.T, b *Bootstrapper, peer rdma.NodeID) []rdma.Endpoint {
	t.Helper()
	eps, ok := b.Remote(peer)
	if !ok {
		t.Fatalf("no connection to node %d", peer)
	}
	return eps
}

// Keep redials a peer whose link is lost, spacing failed redials by
// backoff, and leaves a link that is up alone.
func TestKeepRedialsLostLinksWithBackoff(t *testing.T) {
	ln, _, _ := connectedPair(t, time.Second)
	d, dq := dialerOnly(t, 1, 1, []rdma.NodeID{2, 3}, time.Second)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	var lost atomic.Bool
	lost.Store(true)
	outcomes := make(chan error, 64)
	var deadTries atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	const gap = 5 * time.Millisecond
	go func() {
		done <- d.Keep(ctx, map[rdma.NodeID]string{2: ln.addr(), 3: deadAddr}, gap,
			func(p rdma.NodeID) bool { return p == 3 || lost.Load() },
			func(p rdma.NodeID, err error) {
				if p == 3 {
					deadTries.Add(1)
					return
				}
				outcomes <- err
			})
	}()
	// Node 2's link is reported lost: redialed once, then up again.
	select {
	case err := <-outcomes:
		if err != nil {
			t.Fatalf("redial of node 2: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node 2 never redialed")
	}
	lost.Store(false)
	if r := ln.nextInbound(t); r.err != nil {
		t.Fatal(r.err)
	}
	if dq.inService(2) == nil {
		t.Fatal("the redial put nothing in service")
	}
	// Node 3 never answers: in 300 ms at a 5 ms gap, backoff allows a
	// handful of tries, not sixty.
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := deadTries.Load(); n < 1 || n > 12 {
		t.Errorf("%d redials of an unreachable peer in 300 ms with a %v gap, want backoff (1..12)", n, gap)
	}
	if len(outcomes) > 1 {
		t.Errorf("node 2 redialed %d more times after its link was back", len(outcomes))
	}
}

// A peer that hangs up mid-handshake (its own deadline passed, on a loaded
// host) is retried: only what retrying cannot cure ends ConnectAll.
func TestHangUpIsNotPermanent(t *testing.T) {
	if err := ioErr("frame header", io.EOF); !errors.Is(err, ErrBadHandshake) || isPermanent(err) {
		t.Errorf("hang-up: %v, permanent %v; want ErrBadHandshake, retried", err, isPermanent(err))
	}
	if _, err := readFrame(strings.NewReader("GET / HTTP/1.1\r\n\r\n")); !isPermanent(err) {
		t.Errorf("garbage: %v is retried", err)
	}
}
