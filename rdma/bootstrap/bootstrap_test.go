package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

// fakeQPs is a Peering that hands out queue-pair numbers and keeps the books
// the bootstrap promises about: what is prepared, committed, in service and
// released.
type fakeQPs struct {
	self rdma.NodeID

	mu          sync.Mutex
	nextQPN     uint32
	staged      map[uint32]rdma.NodeID          // prepared attempts by first QPN, not yet activated or aborted
	committed   map[uint32][]rdma.Endpoint      // staged attempts' remote endpoints, once committed
	live        map[rdma.NodeID][]rdma.Endpoint // local endpoints in service
	remote      map[rdma.NodeID][]rdma.Endpoint // the peer's endpoints in service
	prepares    map[rdma.NodeID]int
	aborts      map[rdma.NodeID]int
	activations map[rdma.NodeID]int
	failCommit  error
	failPrep    error
	badPrep     bool // return one endpoint instead of one per plane
}

func newFakeQPs(self rdma.NodeID) *fakeQPs {
	return &fakeQPs{self: self, nextQPN: 0x100 * (uint32(self) + 1),
		staged: map[uint32]rdma.NodeID{}, committed: map[uint32][]rdma.Endpoint{},
		live: map[rdma.NodeID][]rdma.Endpoint{}, remote: map[rdma.NodeID][]rdma.Endpoint{},
		prepares: map[rdma.NodeID]int{}, aborts: map[rdma.NodeID]int{}, activations: map[rdma.NodeID]int{}}
}

func (f *fakeQPs) peering() Peering {
	return Peering{
		Prepare: func(peer rdma.NodeID) ([]rdma.Endpoint, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.prepares[peer]++
			if f.failPrep != nil {
				return nil, f.failPrep
			}
			var eps []rdma.Endpoint
			for p := range rdma.NumPlanes {
				f.nextQPN++
				var gid [16]byte
				gid[10], gid[11], gid[15] = 0xff, 0xff, byte(f.self)
				eps = append(eps, rdma.Endpoint{Plane: p, GID: gid, QPN: f.nextQPN, PSN: f.nextQPN * 7 & 0xffffff,
					Addr: 0x7f0000000000 + uint64(f.self)<<20, RKey: 0xabc0 + uint32(f.self), Length: 1 << 20})
			}
			if f.badPrep {
				eps = eps[:1]
			}
			f.staged[eps[0].QPN] = peer
			return eps, nil
		},
		Commit: func(peer rdma.NodeID, local, remote []rdma.Endpoint) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.failCommit != nil {
				return f.failCommit
			}
			if f.staged[local[0].QPN] != peer || local[0].Node != f.self {
				return fmt.Errorf("commit of %d: local endpoints are not a prepared attempt", peer)
			}
			f.committed[local[0].QPN] = remote
			return nil
		},
		Activate: func(peer rdma.NodeID, local []rdma.Endpoint) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			remote, ok := f.committed[local[0].QPN]
			if !ok || f.staged[local[0].QPN] != peer {
				return fmt.Errorf("activate of %d: not a committed attempt", peer)
			}
			delete(f.staged, local[0].QPN)
			delete(f.committed, local[0].QPN)
			f.live[peer], f.remote[peer] = local, remote
			f.activations[peer]++
			return nil
		},
		Abort: func(peer rdma.NodeID, local []rdma.Endpoint) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.staged[local[0].QPN] != peer {
				panic(fmt.Sprintf("abort of %d: not a staged attempt", peer))
			}
			f.aborts[peer]++
			delete(f.staged, local[0].QPN)
			delete(f.committed, local[0].QPN)
		},
	}
}

// requireClean fails unless no attempt towards peer is left prepared and
// every Prepare was matched by an Abort or an Activate.
func (f *fakeQPs) requireClean(t *testing.T, peer rdma.NodeID) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.staged {
		if p == peer {
			t.Errorf("node %d: queue pairs towards %d left prepared", f.self, peer)
		}
	}
	if f.prepares[peer] != f.aborts[peer]+f.activations[peer] && f.failPrep == nil {
		t.Errorf("node %d: %d prepares but %d aborts and %d activations for %d", f.self, f.prepares[peer], f.aborts[peer], f.activations[peer], peer)
	}
}

// inService returns the local endpoints in service towards peer.
func (f *fakeQPs) inService(peer rdma.NodeID) []rdma.Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[peer]
}

func (f *fakeQPs) count(peer rdma.NodeID) (prepares, aborts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.prepares[peer], f.aborts[peer]
}

type inbound struct {
	peer rdma.NodeID
	err  error
}

// testNode is a Bootstrapper serving on a loopback listener.
type testNode struct {
	id  rdma.NodeID
	b   *Bootstrapper
	qps *fakeQPs
	ln  net.Listener
	in  chan inbound
}

func startNode(t *testing.T, cluster uint64, id rdma.NodeID, peers []rdma.NodeID, timeout time.Duration) *testNode {
	t.Helper()
	n := &testNode{id: id, qps: newFakeQPs(id), in: make(chan inbound, 16)}
	b, err := New(Config{ClusterID: cluster, Self: id, Peers: peers, Timeout: timeout,
		Peering: n.qps.peering(),
		OnInbound: func(_ net.Addr, peer rdma.NodeID, err error) {
			n.in <- inbound{peer, err}
		}})
	if err != nil {
		t.Fatal(err)
	}
	n.b = b
	n.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, n.ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %d: Serve: %v", id, err)
		}
	})
	return n
}

func (n *testNode) addr() string { return n.ln.Addr().String() }

func (n *testNode) nextInbound(t *testing.T) inbound {
	t.Helper()
	select {
	case r := <-n.in:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("node %d: no inbound handshake outcome", n.id)
	}
	return inbound{}
}

func others(all []rdma.NodeID, self rdma.NodeID) []rdma.NodeID {
	return slices.DeleteFunc(slices.Clone(all), func(x rdma.NodeID) bool { return x == self })
}

func TestBootstrapThreeNodes(t *testing.T) {
	const cluster = 0xC1
	ids := []rdma.NodeID{1, 2, 3}
	nodes := map[rdma.NodeID]*testNode{}
	for _, id := range ids {
		nodes[id] = startNode(t, cluster, id, others(ids, id), time.Second)
	}
	addrs := map[rdma.NodeID]string{}
	for id, n := range nodes {
		addrs[id] = n.addr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	results := map[rdma.NodeID]map[rdma.NodeID][]rdma.Endpoint{}
	var mu sync.Mutex
	for _, id := range ids {
		peerAddrs := map[rdma.NodeID]string{}
		for _, p := range others(ids, id) {
			peerAddrs[p] = addrs[p]
		}
		wg.Go(func() {
			got, err := nodes[id].b.ConnectAll(ctx, peerAddrs)
			if err != nil {
				t.Errorf("node %d: ConnectAll: %v", id, err)
			}
			mu.Lock()
			results[id] = got
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, a := range ids {
		for _, b := range others(ids, a) {
			remote := results[a][b]
			nodes[b].qps.mu.Lock()
			prepared := nodes[b].qps.live[a]
			nodes[b].qps.mu.Unlock()
			if len(remote) != int(rdma.NumPlanes) {
				t.Fatalf("node %d has %d endpoints of node %d", a, len(remote), b)
			}
			for p := range rdma.NumPlanes {
				r := remote[p]
				if r.Plane != p || r.Node != b || r.ClusterID != cluster || r.Version != rdma.ProtocolVersion {
					t.Errorf("node %d's endpoint %d of node %d: %+v", a, p, b, r)
				}
				if r.QPN != prepared[p].QPN || r.PSN != prepared[p].PSN || r.GID != prepared[p].GID ||
					r.RKey != prepared[p].RKey || r.Addr != prepared[p].Addr || r.Length != prepared[p].Length {
					t.Errorf("node %d committed %+v for node %d plane %v, but node %d prepared %+v", a, r, b, p, b, prepared[p])
				}
			}
			nodes[a].qps.mu.Lock()
			committed := nodes[a].qps.remote[b]
			pre, ab := nodes[a].qps.prepares[b], nodes[a].qps.aborts[b]
			nodes[a].qps.mu.Unlock()
			if !slices.Equal(committed, remote) {
				t.Errorf("node %d's Commit saw %v for node %d, ConnectAll returned %v", a, committed, b, remote)
			}
			if pre != 1 || ab != 0 {
				t.Errorf("node %d: %d prepares and %d aborts towards node %d, want 1 and 0", a, pre, ab, b)
			}
			if got, ok := nodes[a].b.Remote(b); !ok || !slices.Equal(got, remote) {
				t.Errorf("node %d: Remote(%d) = %v, %v", a, b, got, ok)
			}
		}
	}

	// A second ConnectAll finds everyone connected and sets up nothing new.
	again, err := nodes[1].b.ConnectAll(ctx, map[rdma.NodeID]string{2: addrs[2], 3: addrs[3]})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []rdma.NodeID{2, 3} {
		if pre, _ := nodes[1].qps.count(p); pre != 1 || !slices.Equal(again[p], results[1][p]) {
			t.Errorf("second ConnectAll: %d prepares towards node %d, endpoints %v (were %v)", pre, p, again[p], results[1][p])
		}
	}
}

// rawListener accepts one connection and hands it to script.
func rawListener(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		script(c)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func dialerOnly(t *testing.T, cluster uint64, self rdma.NodeID, peers []rdma.NodeID, timeout time.Duration) (*Bootstrapper, *fakeQPs) {
	t.Helper()
	q := newFakeQPs(self)
	b, err := New(Config{ClusterID: cluster, Self: self, Peers: peers, Timeout: timeout, Peering: q.peering()})
	if err != nil {
		t.Fatal(err)
	}
	return b, q
}

func validHello(cluster uint64, from, to rdma.NodeID) []byte {
	q := newFakeQPs(from)
	eps, _ := q.peering().Prepare(to)
	for i := range eps {
		eps[i].Version, eps[i].ClusterID, eps[i].Node = rdma.ProtocolVersion, cluster, from
	}
	return encodeHello(hello{Cluster: cluster, From: from, To: to, Endpoints: eps})
}

// Each case is a listener that misbehaves after reading the dialer's hello.
func TestBootstrapDialerRejectsBadListener(t *testing.T) {
	const cluster = 7
	readHello := func(c net.Conn) bool { _, err := readFrame(c); return err == nil }
	cases := []struct {
		name   string
		script func(c net.Conn)
		want   error
	}{
		{"garbage", func(c net.Conn) {
			readHello(c)
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		}, ErrBadHandshake},
		{"truncated", func(c net.Conn) {
			readHello(c)
			f := appendFrame(nil, kindHello, validHello(cluster, 2, 1))
			c.Write(f[:len(f)/2])
		}, ErrBadHandshake},
		{"bad checksum", func(c net.Conn) {
			readHello(c)
			f := appendFrame(nil, kindHello, validHello(cluster, 2, 1))
			f[frameHeaderLen+20] ^= 0x40
			c.Write(f)
		}, ErrBadHandshake},
		{"huge length", func(c net.Conn) {
			readHello(c)
			f := appendFrame(nil, kindHello, validHello(cluster, 2, 1))
			f[8] = 0x7f
			c.Write(f)
		}, ErrBadHandshake},
		{"wrong version", func(c net.Conn) {
			readHello(c)
			c.Write(appendFrameVersion(nil, rdma.ProtocolVersion+1, kindHello, validHello(cluster, 2, 1)))
			io.Copy(io.Discard, c)
		}, ErrVersionMismatch},
		{"foreign cluster", func(c net.Conn) {
			readHello(c)
			c.Write(appendFrame(nil, kindHello, validHello(cluster+1, 2, 1)))
			io.Copy(io.Discard, c)
		}, ErrForeignCluster},
		{"unexpected node id", func(c net.Conn) {
			readHello(c)
			c.Write(appendFrame(nil, kindHello, validHello(cluster, 5, 1)))
			io.Copy(io.Discard, c)
		}, ErrUnexpectedPeer},
		{"addressed to another node", func(c net.Conn) {
			readHello(c)
			c.Write(appendFrame(nil, kindHello, validHello(cluster, 2, 3)))
			io.Copy(io.Discard, c)
		}, ErrUnexpectedPeer},
		{"never answers", func(c net.Conn) {
			readHello(c)
			io.Copy(io.Discard, c)
		}, ErrHandshakeTimeout},
		{"never confirms commit", func(c net.Conn) {
			readHello(c)
			c.Write(appendFrame(nil, kindHello, validHello(cluster, 2, 1)))
			io.Copy(io.Discard, c)
		}, ErrHandshakeTimeout},
		{"closes before commit", func(c net.Conn) {
			readHello(c)
			c.Write(appendFrame(nil, kindHello, validHello(cluster, 2, 1)))
			readFrame(c)
		}, ErrBadHandshake},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := rawListener(t, c.script)
			b, q := dialerOnly(t, cluster, 1, []rdma.NodeID{2, 3}, 150*time.Millisecond)
			start := time.Now()
			_, err := b.Exchange(context.Background(), 2, addr)
			if !errors.Is(err, c.want) {
				t.Fatalf("Exchange error = %v, want %v", err, c.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Exchange took %v with a 150ms handshake timeout", d)
			}
			if pre, ab := q.count(2); pre != 1 || ab != 1 {
				t.Errorf("prepares %d, aborts %d; want 1 and 1", pre, ab)
			}
			q.requireClean(t, 2)
			if _, ok := b.Remote(2); ok {
				t.Error("Remote(2) reports a connection")
			}
			if q.inService(2) != nil {
				t.Error("a failed handshake put queue pairs in service")
			}
		})
	}
}

// Each case is a dialer that misbehaves towards a real listener (node 3).
func TestBootstrapListenerRejectsBadDialer(t *testing.T) {
	const cluster = 9
	cases := []struct {
		name     string
		send     []byte
		closeNow bool
		want     error
		reject   bool // the listener answers with a reject frame
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, ErrBadHandshake, false},
		{"truncated", appendFrame(nil, kindHello, validHello(cluster, 1, 3))[:30], true, ErrBadHandshake, false},
		{"wrong version", appendFrameVersion(nil, 2, kindHello, validHello(cluster, 1, 3)), false, ErrVersionMismatch, true},
		{"foreign cluster", appendFrame(nil, kindHello, validHello(cluster^0xff, 1, 3)), false, ErrForeignCluster, true},
		{"unknown node", appendFrame(nil, kindHello, validHello(cluster, 6, 3)), false, ErrUnexpectedPeer, true},
		{"higher id dials", appendFrame(nil, kindHello, validHello(cluster, 4, 3)), false, ErrUnexpectedPeer, true},
		{"addressed to another node", appendFrame(nil, kindHello, validHello(cluster, 1, 2)), false, ErrUnexpectedPeer, true},
		{"commit before hello", appendFrame(nil, kindCommit, nil), false, ErrBadHandshake, true},
		{"one plane only", appendFrame(nil, kindHello, func() []byte {
			h, _ := decodeHello(validHello(cluster, 1, 3))
			h.Endpoints = h.Endpoints[:1]
			return encodeHello(h)
		}()), false, ErrBadHandshake, true},
		{"never sends", nil, false, ErrHandshakeTimeout, false},
	}
	n := startNode(t, cluster, 3, []rdma.NodeID{1, 2, 4}, 150*time.Millisecond)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", n.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write(c.send)
			if c.closeNow {
				conn.(*net.TCPConn).CloseWrite()
			}
			r := n.nextInbound(t)
			if !errors.Is(r.err, c.want) {
				t.Fatalf("listener outcome %v, want %v", r.err, c.want)
			}
			conn.SetReadDeadline(time.Now().Add(time.Second))
			f, err := readFrame(conn)
			if c.reject {
				if err != nil || f.kind != kindReject {
					t.Fatalf("dialer got %v, %v; want a reject frame", f.kind, err)
				}
				if got := decodeReject(f, 3); !errors.Is(got, c.want) {
					t.Errorf("reject decodes to %v, want %v", got, c.want)
				}
				// The dialer may be anyone: no cluster id, no node ids.
				if msg := string(f.body[3:]); strings.ContainsAny(msg, "0123456789") {
					t.Errorf("reject message %q reveals numbers", msg)
				}
			} else if err == nil {
				t.Errorf("dialer got a %s frame, want the connection closed", f.kind)
			}
		})
	}
	for _, p := range []rdma.NodeID{1, 2, 4, 6} {
		if pre, _ := n.qps.count(p); pre != 0 {
			t.Errorf("listener prepared %d times for node %d after invalid hellos", pre, p)
		}
	}
}

func TestBootstrapCommitFailureRollsBackBothSides(t *testing.T) {
	for _, failAt := range []string{"listener", "dialer", "listener prepare"} {
		t.Run(failAt, func(t *testing.T) {
			ln := startNode(t, 1, 2, []rdma.NodeID{1}, time.Second)
			d, dq := dialerOnly(t, 1, 1, []rdma.NodeID{2}, time.Second)
			switch failAt {
			case "listener":
				ln.qps.failCommit = errors.New("modify qp to RTR: invalid argument")
			case "dialer":
				dq.failCommit = errors.New("modify qp to RTR: invalid argument")
			case "listener prepare":
				ln.qps.failPrep = errors.New("create qp: out of memory")
			}
			_, err := d.Exchange(context.Background(), 2, ln.addr())
			if err == nil {
				t.Fatal("Exchange succeeded")
			}
			if failAt != "dialer" && !errors.Is(err, ErrPeerRejected) {
				t.Errorf("dialer error = %v, want ErrPeerRejected", err)
			}
			r := ln.nextInbound(t)
			if r.err == nil {
				t.Fatal("listener reports success")
			}
			if failAt == "dialer" && !errors.Is(r.err, ErrPeerRejected) {
				t.Errorf("listener error = %v, want ErrPeerRejected", r.err)
			}
			dq.requireClean(t, 2)
			ln.qps.requireClean(t, 1)
			if dq.inService(2) != nil || ln.qps.inService(1) != nil {
				t.Error("a failed handshake put queue pairs in service")
			}
			if _, ok := d.Remote(2); ok {
				t.Error("dialer reports a connection")
			}
			if _, ok := ln.b.Remote(1); ok {
				t.Error("listener reports a connection")
			}
		})
	}
}

func TestBootstrapLocalChecks(t *testing.T) {
	b, q := dialerOnly(t, 1, 2, []rdma.NodeID{1, 3}, time.Second)
	if _, err := b.Exchange(context.Background(), 1, "127.0.0.1:1"); !errors.Is(err, ErrUnexpectedPeer) {
		t.Errorf("dialing a lower id: %v, want ErrUnexpectedPeer", err)
	}
	if _, err := b.Exchange(context.Background(), 9, "127.0.0.1:1"); !errors.Is(err, ErrUnexpectedPeer) {
		t.Errorf("dialing an unknown id: %v, want ErrUnexpectedPeer", err)
	}
	// A bad Prepare result is caught before anything is sent, and released.
	q.badPrep = true
	addr := rawListener(t, func(c net.Conn) {
		if _, err := readFrame(c); err == nil {
			t.Error("a hello was sent with bad endpoints")
		}
	})
	if _, err := b.Exchange(context.Background(), 3, addr); !errors.Is(err, ErrBadHandshake) {
		t.Errorf("bad Prepare result: %v, want ErrBadHandshake", err)
	}
	q.requireClean(t, 3)

	peering := newFakeQPs(1).peering()
	for _, cfg := range []Config{
		{Self: 1, Peers: []rdma.NodeID{1, 2}, Peering: peering},
		{Self: 1, Peers: []rdma.NodeID{2, 2}, Peering: peering},
		{Self: 1, Peers: []rdma.NodeID{2}, Timeout: -time.Second, Peering: peering},
		{Self: 1, Peers: []rdma.NodeID{2}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("NewBootstrapper(%+v) succeeded", cfg)
		}
	}
}

func TestBootstrapConnectAllErrors(t *testing.T) {
	// Nobody listens at the peer's address: retries until ctx ends.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	b, q := dialerOnly(t, 1, 1, []rdma.NodeID{2}, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got, err := b.ConnectAll(ctx, map[rdma.NodeID]string{2: deadAddr})
	if !errors.Is(err, ErrHandshakeTimeout) || len(got) != 0 {
		t.Errorf("ConnectAll to a dead address = %v, %v; want ErrHandshakeTimeout", got, err)
	}
	q.requireClean(t, 2)

	// A peer that never dials in.
	n := startNode(t, 1, 2, []rdma.NodeID{1}, 100*time.Millisecond)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := n.b.ConnectAll(ctx2, map[rdma.NodeID]string{1: "127.0.0.1:1"}); !errors.Is(err, ErrHandshakeTimeout) {
		t.Errorf("waiting for a lower id that never dials: %v, want ErrHandshakeTimeout", err)
	}

	// A foreign cluster fails at once instead of retrying to the deadline.
	other := startNode(t, 99, 2, []rdma.NodeID{1}, time.Second)
	b2, _ := dialerOnly(t, 1, 1, []rdma.NodeID{2}, time.Second)
	start := time.Now()
	_, err = b2.ConnectAll(context.Background(), map[rdma.NodeID]string{2: other.addr()})
	if !errors.Is(err, ErrForeignCluster) {
		t.Errorf("ConnectAll into a foreign cluster: %v, want ErrForeignCluster", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a permanent error took %v", d)
	}
	if r := other.nextInbound(t); !errors.Is(r.err, ErrForeignCluster) {
		t.Errorf("listener outcome %v, want ErrForeignCluster", r.err)
	}

	if _, err := b2.ConnectAll(context.Background(), map[rdma.NodeID]string{7: "127.0.0.1:1"}); !errors.Is(err, ErrUnexpectedPeer) {
		t.Errorf("ConnectAll with an unknown peer: %v", err)
	}
}

// A dialer that handshakes again replaces its earlier connection: the
// listener prepares anew and ends with the second set of endpoints.
func TestBootstrapRedialReplaces(t *testing.T) {
	ln := startNode(t, 1, 2, []rdma.NodeID{1}, time.Second)
	d, _ := dialerOnly(t, 1, 1, []rdma.NodeID{2}, time.Second)
	first, err := d.Exchange(context.Background(), 2, ln.addr())
	if err != nil {
		t.Fatal(err)
	}
	ln.nextInbound(t)
	second, err := d.Exchange(context.Background(), 2, ln.addr())
	if err != nil {
		t.Fatal(err)
	}
	ln.nextInbound(t)
	if first[0].QPN == second[0].QPN {
		t.Error("second handshake reused the first queue pairs")
	}
	got, ok := ln.b.Remote(1)
	mine, _ := d.Remote(2)
	if !ok || !slices.Equal(mine, second) {
		t.Errorf("dialer Remote = %v, want %v", mine, second)
	}
	if pre, _ := ln.qps.count(1); pre != 2 || got[0].QPN == 0 {
		t.Errorf("listener prepared %d times, want 2", pre)
	}
}

func TestEndpointWireRoundTrip(t *testing.T) {
	e := rdma.Endpoint{Version: 1, ClusterID: 0x0102030405060708, Node: 0x0a0b, Plane: rdma.PlaneBackground,
		GID: [16]byte{0xfe, 0x80, 15: 1}, QPN: 0x123456, PSN: 0xabcdef, Addr: 0xdeadbeef000, RKey: 0x55aa, Length: 1 << 30}
	b := AppendEndpoint(nil, e)
	if len(b) != endpointWireLen {
		t.Fatalf("wire length %d, want %d", len(b), endpointWireLen)
	}
	got, err := DecodeEndpoint(b)
	if err != nil || got != e {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, e)
	}
	if _, err := DecodeEndpoint(b[:56]); !errors.Is(err, ErrBadHandshake) {
		t.Errorf("short endpoint: %v", err)
	}
}

// Every single-byte corruption of a frame is detected by readFrame (magic,
// length or checksum), never handed to a decoder.
func TestFrameDetectsEveryByteFlip(t *testing.T) {
	f := appendFrame(nil, kindHello, validHello(3, 1, 2))
	if got, err := readFrame(bytes.NewReader(f)); err != nil || !bytes.Equal(got.body, f[frameHeaderLen:len(f)-4]) {
		t.Fatalf("clean frame: %v", err)
	}
	for i := range f {
		for _, bit := range []byte{0x01, 0x80} {
			bad := slices.Clone(f)
			bad[i] ^= bit
			if _, err := readFrame(bytes.NewReader(bad)); !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("flip of bit %#x in byte %d: %v, want ErrBadHandshake", bit, i, err)
			}
		}
	}
}

// Cancelling the caller's context ends a handshake at once, reported as a
// cancellation rather than a timeout, and releases what was prepared.
func TestBootstrapExchangeCancelled(t *testing.T) {
	addr := rawListener(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	b, q := dialerOnly(t, 1, 1, []rdma.NodeID{2}, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.Exchange(ctx, 2, addr)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrHandshakeTimeout) {
		t.Fatalf("Exchange error = %v, want context.Canceled only", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	q.requireClean(t, 2)
}
