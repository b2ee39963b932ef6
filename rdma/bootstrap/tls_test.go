package bootstrap_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/bootstrap"
)

const tlsCluster = 0x6d75

// qps is a Peering that counts what the bootstrap asked of it.
type qps struct {
	self     rdma.NodeID
	mu       sync.Mutex
	prepares map[rdma.NodeID]int
	commits  map[rdma.NodeID]int
}

func (q *qps) peering() bootstrap.Peering {
	return bootstrap.Peering{
		Prepare: func(peer rdma.NodeID) ([]rdma.Endpoint, error) {
			q.mu.Lock()
			defer q.mu.Unlock()
			q.prepares[peer]++
			var eps []rdma.Endpoint
			for p := range rdma.NumPlanes {
				eps = append(eps, rdma.Endpoint{Plane: p, QPN: 0x100*uint32(q.self) + uint32(p) + 2, PSN: 1, Addr: 0x1000, RKey: 0xabc, Length: 1 << 20})
			}
			return eps, nil
		},
		Commit: func(peer rdma.NodeID, _, _ []rdma.Endpoint) error {
			q.mu.Lock()
			defer q.mu.Unlock()
			q.commits[peer]++
			return nil
		},
		Abort: func(rdma.NodeID, []rdma.Endpoint) {},
	}
}

func (q *qps) count(peer rdma.NodeID) (int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.prepares[peer], q.commits[peer]
}

type tlsNode struct {
	b   *bootstrap.Bootstrapper
	q   *qps
	ln  net.Listener
	in  chan error
	cfg bootstrap.Config
}

func tlsConfig(creds *clustertls.Credentials) (server *tls.Config, client func(rdma.NodeID) *tls.Config, id func(tls.ConnectionState) (rdma.NodeID, error)) {
	return creds.ServerConfig(clustertls.OnlyNodes), creds.ClientConfig, clustertls.PeerNode
}

func startTLSNode(t *testing.T, self rdma.NodeID, peers []rdma.NodeID, creds *clustertls.Credentials) *tlsNode {
	t.Helper()
	n := &tlsNode{q: &qps{self: self, prepares: map[rdma.NodeID]int{}, commits: map[rdma.NodeID]int{}}, in: make(chan error, 16)}
	n.cfg = bootstrap.Config{ClusterID: tlsCluster, Self: self, Peers: peers, Timeout: time.Second, Peering: n.q.peering(),
		OnInbound: func(_ net.Addr, _ rdma.NodeID, err error) { n.in <- err }}
	if creds != nil {
		n.cfg.ServerTLS, n.cfg.ClientTLS, n.cfg.PeerID = tlsConfig(creds)
	}
	var err error
	if n.b, err = bootstrap.New(n.cfg); err != nil {
		t.Fatal(err)
	}
	if n.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = n.b.Serve(ctx, n.ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

func (n *tlsNode) inbound(t *testing.T) error {
	t.Helper()
	select {
	case err := <-n.in:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("no inbound outcome")
	}
	return nil
}

func issue(t *testing.T, ca clustertls.PEM, id clustertls.Identity) *clustertls.Credentials {
	t.Helper()
	c, err := clustertls.IssueCredentials(ca, id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawHello is a well-formed hello frame as an attacker would write it,
// knowing the wire format and the cluster id.
func rawHello(from, to rdma.NodeID) []byte {
	var body []byte
	body = binary.BigEndian.AppendUint64(body, tlsCluster)
	body = binary.BigEndian.AppendUint16(body, uint16(from))
	body = binary.BigEndian.AppendUint16(body, uint16(to))
	body = append(body, byte(rdma.NumPlanes))
	for p := range rdma.NumPlanes {
		body = bootstrap.AppendEndpoint(body, rdma.Endpoint{Version: rdma.ProtocolVersion, ClusterID: tlsCluster, Node: from, Plane: p, QPN: 0x500 + uint32(p), PSN: 1, Addr: 0x1000, RKey: 0xdead, Length: 1 << 20})
	}
	var f []byte
	f = append(f, "MuBs"...)
	f = binary.BigEndian.AppendUint16(f, rdma.ProtocolVersion)
	f = append(f, 1, 0)
	f = binary.BigEndian.AppendUint32(f, uint32(len(body)))
	f = append(f, body...)
	return binary.BigEndian.AppendUint32(f, crcC(f))
}

// The honest path: mutual TLS, then the handshake as before.
func TestBootstrapTLSConnects(t *testing.T) {
	ca, err := clustertls.NewCA("t", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n2 := startTLSNode(t, 2, []rdma.NodeID{1, 3}, issue(t, ca, clustertls.NodeIdentity(2)))
	n1 := startTLSNode(t, 1, []rdma.NodeID{2, 3}, issue(t, ca, clustertls.NodeIdentity(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n1.b.Exchange(ctx, 2, n2.ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := n2.inbound(t); err != nil {
		t.Fatal(err)
	}
	if _, c := n2.q.count(1); c != 1 {
		t.Errorf("listener committed %d times", c)
	}
}

// Attack: a plain-TCP client sends a perfect hello as node 1. The
// listener never reads it (TLS fails first), prepares nothing, and the
// attacker learns nothing: no frame comes back, only a TLS alert.
func TestBootstrapTLSRefusesPlainHello(t *testing.T) {
	ca, _ := clustertls.NewCA("t", time.Hour)
	n3 := startTLSNode(t, 3, []rdma.NodeID{1, 2}, issue(t, ca, clustertls.NodeIdentity(3)))
	c, err := net.Dial("tcp", n3.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(rawHello(1, 3))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)
	if bytes.Contains(got, []byte("MuBs")) || bytes.Contains(got, binary.BigEndian.AppendUint64(nil, tlsCluster)) {
		t.Errorf("attacker read %q", got)
	}
	if err := n3.inbound(t); !errors.Is(err, bootstrap.ErrUnauthenticated) {
		t.Errorf("listener outcome %v, want ErrUnauthenticated", err)
	}
	if p, _ := n3.q.count(1); p != 0 {
		t.Errorf("listener prepared queue pairs for the impostor (%d)", p)
	}
}

// Attack: impersonation by a cluster member. Node 2's certificate is
// valid, but its hello claims node 1: refused before any queue pair is
// made, and the reject names no id.
func TestBootstrapTLSRefusesImpersonation(t *testing.T) {
	ca, _ := clustertls.NewCA("t", time.Hour)
	n3 := startTLSNode(t, 3, []rdma.NodeID{1, 2}, issue(t, ca, clustertls.NodeIdentity(3)))
	mallory := issue(t, ca, clustertls.NodeIdentity(2))
	raw, err := net.Dial("tcp", n3.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := tls.Client(raw, mallory.ClientConfig(3))
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(rawHello(1, 3))
	got, _ := io.ReadAll(c)
	if len(got) == 0 || !bytes.Contains(got, []byte("MuBs")) {
		t.Fatalf("no reject frame: %q", got)
	}
	if bytes.ContainsAny(got[15:len(got)-4], "0123456789") {
		t.Errorf("reject reveals numbers: %q", got[15:len(got)-4])
	}
	if err := n3.inbound(t); !errors.Is(err, bootstrap.ErrUnexpectedPeer) {
		t.Errorf("listener outcome %v, want ErrUnexpectedPeer", err)
	}
	for _, p := range []rdma.NodeID{1, 2} {
		if n, _ := n3.q.count(p); n != 0 {
			t.Errorf("listener prepared queue pairs for node %d (%d)", p, n)
		}
	}
}

// Attack: another CA's certificate for node 1, and a dialer reaching an
// impostor listener: both refused before the hello.
func TestBootstrapTLSRefusesForeignAndWrongListener(t *testing.T) {
	ca, _ := clustertls.NewCA("t", time.Hour)
	evil, _ := clustertls.NewCA("evil", time.Hour)
	n3 := startTLSNode(t, 3, []rdma.NodeID{1, 2}, issue(t, ca, clustertls.NodeIdentity(3)))
	fake1 := startTLSNode(t, 1, []rdma.NodeID{2, 3}, issue(t, evil, clustertls.NodeIdentity(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := fake1.b.Exchange(ctx, 3, n3.ln.Addr().String()); !errors.Is(err, bootstrap.ErrUnauthenticated) {
		t.Errorf("foreign CA dialer: %v", err)
	}
	if err := n3.inbound(t); !errors.Is(err, bootstrap.ErrUnauthenticated) {
		t.Errorf("listener outcome %v", err)
	}
	// Node 1 dials "node 3" but the address holds node 2 (a valid member):
	// the certificate names the wrong node.
	n2 := startTLSNode(t, 2, []rdma.NodeID{1, 3}, issue(t, ca, clustertls.NodeIdentity(2)))
	n1 := startTLSNode(t, 1, []rdma.NodeID{2, 3}, issue(t, ca, clustertls.NodeIdentity(1)))
	if _, err := n1.b.Exchange(ctx, 3, n2.ln.Addr().String()); !errors.Is(err, bootstrap.ErrUnauthenticated) {
		t.Errorf("dialing node 3 at node 2's address: %v", err)
	}
	if p, _ := n1.q.count(3); p != 0 {
		t.Errorf("dialer prepared queue pairs before authenticating the listener (%d)", p)
	}
}

func TestBootstrapTLSConfigTogether(t *testing.T) {
	ca, _ := clustertls.NewCA("t", time.Hour)
	cr := issue(t, ca, clustertls.NodeIdentity(1))
	q := &qps{prepares: map[rdma.NodeID]int{}, commits: map[rdma.NodeID]int{}}
	if _, err := bootstrap.New(bootstrap.Config{ClusterID: 1, Self: 1, Peers: []rdma.NodeID{2}, Peering: q.peering(),
		ServerTLS: cr.ServerConfig(nil)}); err == nil {
		t.Error("ServerTLS without ClientTLS accepted")
	}
}

func crcC(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// BenchmarkBootstrapHandshake measures one whole bootstrap handshake on
// loopback (dial, hello both ways, commit both ways), in plain TCP and
// inside mutual TLS 1.3 with ECDSA P-256 certificates: the cost of
// authentication, paid once per peer connection, off the data path.
func BenchmarkBootstrapHandshake(b *testing.B) {
	ca, err := clustertls.NewCA("bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	load := func(id rdma.NodeID) *clustertls.Credentials {
		c, err := clustertls.IssueCredentials(ca, clustertls.NodeIdentity(id), time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			mk := func(self rdma.NodeID, peers []rdma.NodeID) *bootstrap.Bootstrapper {
				q := &qps{self: self, prepares: map[rdma.NodeID]int{}, commits: map[rdma.NodeID]int{}}
				cfg := bootstrap.Config{ClusterID: tlsCluster, Self: self, Peers: peers, Timeout: 5 * time.Second, Peering: q.peering()}
				if mode == "tls" {
					cfg.ServerTLS, cfg.ClientTLS, cfg.PeerID = tlsConfig(load(self))
				}
				bs, err := bootstrap.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				return bs
			}
			listener, dialer := mk(2, []rdma.NodeID{1}), mk(1, []rdma.NodeID{2})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = listener.Serve(ctx, ln); close(done) }()
			defer func() { cancel(); <-done }()
			addr := ln.Addr().String()
			b.ResetTimer()
			for range b.N {
				if _, err := dialer.Exchange(ctx, 2, addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Attack: replay. Everything node 1 sent in a real handshake, recorded on
// the wire and sent again on a new connection, fails in the TLS
// handshake (fresh keys each time): nothing is prepared for it.
func TestBootstrapTLSRefusesReplay(t *testing.T) {
	ca, _ := clustertls.NewCA("t", time.Hour)
	n2 := startTLSNode(t, 2, []rdma.NodeID{1, 3}, issue(t, ca, clustertls.NodeIdentity(2)))
	n1 := startTLSNode(t, 1, []rdma.NodeID{2, 3}, issue(t, ca, clustertls.NodeIdentity(1)))
	// A recording relay between node 1 and node 2.
	relay, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	var sent bytes.Buffer
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		in, err := relay.Accept()
		if err != nil {
			return
		}
		defer in.Close()
		out, err := net.Dial("tcp", n2.ln.Addr().String())
		if err != nil {
			return
		}
		defer out.Close()
		back := make(chan struct{})
		go func() { _, _ = io.Copy(in, out); close(back) }()
		_, _ = io.Copy(io.MultiWriter(out, &sent), in)
		<-back
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n1.b.Exchange(ctx, 2, relay.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := n2.inbound(t); err != nil {
		t.Fatal(err)
	}
	<-relayed
	c, err := net.Dial("tcp", n2.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(sent.Bytes())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c)
	if err := n2.inbound(t); !errors.Is(err, bootstrap.ErrUnauthenticated) {
		t.Errorf("replayed handshake: listener outcome %v, want ErrUnauthenticated", err)
	}
	if p, _ := n2.q.count(1); p != 1 {
		t.Errorf("listener prepared %d times for node 1, want once (the real handshake)", p)
	}
}
