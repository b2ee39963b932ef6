package clustertls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

type cluster struct {
	ca    PEM
	creds map[string]*Credentials
}

func newCluster(t testing.TB, ids ...Identity) *cluster {
	t.Helper()
	ca, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{ca: ca, creds: map[string]*Credentials{}}
	for _, id := range ids {
		c.creds[id.String()] = c.issue(t, id, time.Hour)
	}
	return c
}

func (c *cluster) issue(t testing.TB, id Identity, validity time.Duration) *Credentials {
	t.Helper()
	p, err := Issue(c.ca, id, validity)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := Load(c.ca.Cert, p)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Self != id {
		t.Fatalf("loaded identity %v, issued %v", cr.Self, id)
	}
	return cr
}

// handshake runs one TLS handshake over a pipe and returns both sides'
// errors and the identity the server saw.
func handshake(server, client *tls.Config) (srvErr, cliErr error, seen Identity) {
	a, b := tcpPair()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := tls.Server(a, server)
		if srvErr = s.HandshakeContext(ctx); srvErr == nil {
			seen, srvErr = PeerIdentity(s.ConnectionState())
		}
		a.Close()
	}()
	c := tls.Client(b, client)
	cliErr = c.HandshakeContext(ctx)
	if cliErr == nil {
		// TLS 1.3: the client finishes first; a server refusal arrives
		// with the first read.
		_, cliErr = c.Read(make([]byte, 1))
		if errors.Is(cliErr, io.EOF) {
			cliErr = nil
		}
	}
	b.Close()
	<-done
	return
}

func TestMutualHandshakeBindsIdentity(t *testing.T) {
	c := newCluster(t, NodeIdentity(1), NodeIdentity(2), ClientIdentity("ops"))
	n1, n2, ops := c.creds["node 1"], c.creds["node 2"], c.creds[`client "ops"`]
	srvErr, cliErr, seen := handshake(n2.ServerConfig(OnlyNodes), n1.ClientConfig(2))
	if srvErr != nil || cliErr != nil || seen != NodeIdentity(1) {
		t.Fatalf("node 1 -> node 2: server %v, client %v, seen %v", srvErr, cliErr, seen)
	}
	if cs := n1.ClientConfig(2); cs.MinVersion != tls.VersionTLS13 {
		t.Error("not TLS 1.3")
	}
	// A client certificate may use the client endpoint, not the bootstrap.
	if srvErr, _, seen := handshake(n2.ServerConfig(nil), ops.ClientConfig(0)); srvErr != nil || seen != ClientIdentity("ops") {
		t.Errorf("client -> client endpoint: %v %v", srvErr, seen)
	}
	if srvErr, _, _ := handshake(n2.ServerConfig(OnlyNodes), ops.ClientConfig(2)); srvErr == nil {
		t.Error("a client certificate passed the bootstrap listener")
	}
	// The dialer meant node 3 but reached node 2.
	if _, cliErr, _ := handshake(n2.ServerConfig(OnlyNodes), n1.ClientConfig(3)); cliErr == nil {
		t.Error("dialer accepted node 2 when it dialed node 3")
	}
}

func TestForeignCAAndNoCertificateRefused(t *testing.T) {
	c := newCluster(t, NodeIdentity(1), NodeIdentity(2))
	other := newCluster(t, NodeIdentity(1))
	if srvErr, _, _ := handshake(c.creds["node 2"].ServerConfig(OnlyNodes), other.creds["node 1"].ClientConfig(2)); srvErr == nil {
		t.Error("a node of another cluster's CA was accepted")
	}
	if _, cliErr, _ := handshake(other.creds["node 1"].ServerConfig(OnlyNodes), c.creds["node 2"].ClientConfig(1)); cliErr == nil {
		t.Error("a listener of another cluster's CA was accepted")
	}
	anon := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if srvErr, _, _ := handshake(c.creds["node 2"].ServerConfig(nil), anon); srvErr == nil {
		t.Error("a client without a certificate was accepted")
	}
	old := &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true, Certificates: c.creds["node 1"].base().Certificates}
	if srvErr, _, _ := handshake(c.creds["node 2"].ServerConfig(nil), old); srvErr == nil {
		t.Error("TLS 1.2 was accepted")
	}
}

func TestLoadRefusesBadCredentials(t *testing.T) {
	c := newCluster(t)
	other := newCluster(t)
	p, err := Issue(other.ca, NodeIdentity(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(c.ca.Cert, p); !errors.Is(err, ErrCredentials) {
		t.Errorf("certificate of another CA: %v", err)
	}
	q, _ := Issue(c.ca, NodeIdentity(1), time.Hour)
	if _, err := Load(c.ca.Cert, PEM{Cert: q.Cert, Key: p.Key}); !errors.Is(err, ErrCredentials) {
		t.Errorf("mismatched key: %v", err)
	}
	if _, err := Load([]byte("not pem"), q); !errors.Is(err, ErrCredentials) {
		t.Errorf("bad CA: %v", err)
	}
	if _, err := Issue(c.ca, ClientIdentity("../etc"), time.Hour); !errors.Is(err, ErrCredentials) {
		t.Errorf("bad client name: %v", err)
	}
	expired, err := Issue(c.ca, NodeIdentity(2), -2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(c.ca.Cert, expired); !errors.Is(err, ErrCredentials) {
		t.Errorf("expired certificate: %v", err)
	}
	if _, err := LoadFiles("/nonexistent/ca.pem", "x", "y"); !errors.Is(err, ErrCredentials) {
		t.Errorf("missing file: %v", err)
	}
}

func TestPeerNode(t *testing.T) {
	c := newCluster(t, NodeIdentity(7), ClientIdentity("x"))
	if id, err := PeerNode(tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.creds["node 7"].leaf}}); err != nil || id != rdma.NodeID(7) {
		t.Errorf("PeerNode = %d, %v", id, err)
	}
	if _, err := PeerNode(tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.creds[`client "x"`].leaf}}); err == nil {
		t.Error("a client passed as a node")
	}
}

// tcpPair is a connected loopback pair: unlike net.Pipe, writes are
// buffered, as on the real listeners.
func tcpPair() (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		ch <- c
	}()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	return <-ch, b
}

func TestDirFlow(t *testing.T) {
	dir := t.TempDir()
	if err := InitDir(dir, "t", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := InitDir(dir, "t", time.Hour); !errors.Is(err, ErrCredentials) {
		t.Errorf("second init: %v", err)
	}
	cert, key, err := IssueInDir(dir, NodeIdentity(3), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := LoadFiles(dir+"/"+CAFile, cert, key)
	if err != nil || cr.Self != NodeIdentity(3) {
		t.Fatalf("%v %v", cr, err)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", st.Mode(), err)
	}
	if _, _, err := IssueInDir(t.TempDir(), NodeIdentity(1), time.Hour); !errors.Is(err, ErrCredentials) {
		t.Errorf("issue without a CA: %v", err)
	}
}

// CA rotation: a CA file holding the old and the new CA accepts
// certificates of both, so nodes can move over one at a time.
func TestCARotationBundle(t *testing.T) {
	old, next := newCluster(t), newCluster(t)
	bundle := append(append([]byte(nil), old.ca.Cert...), next.ca.Cert...)
	a, err := Issue(old.ca, NodeIdentity(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Issue(next.ca, NodeIdentity(2), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := Load(bundle, a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := Load(bundle, b)
	if err != nil {
		t.Fatal(err)
	}
	if srvErr, cliErr, seen := handshake(cb.ServerConfig(OnlyNodes), ca.ClientConfig(2)); srvErr != nil || cliErr != nil || seen != NodeIdentity(1) {
		t.Fatalf("old-CA node to new-CA node under the bundle: %v %v %v", srvErr, cliErr, seen)
	}
	// Once the old CA is dropped, its certificates are refused.
	onlyNew, err := Load(next.ca.Cert, b)
	if err != nil {
		t.Fatal(err)
	}
	if srvErr, _, _ := handshake(onlyNew.ServerConfig(OnlyNodes), ca.ClientConfig(2)); srvErr == nil {
		t.Error("old-CA certificate accepted after the old CA was dropped")
	}
}
