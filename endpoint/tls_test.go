package endpoint

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
)

func creds(t *testing.T, ca clustertls.PEM, id clustertls.Identity) *clustertls.Credentials {
	t.Helper()
	c, err := clustertls.IssueCredentials(ca, id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// With TLS, the handler sees who is asking, and a client without the
// cluster's certificate gets no answer at all.
func TestServerTLS(t *testing.T) {
	ca, err := clustertls.NewCA("t", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	node := creds(t, ca, clustertls.NodeIdentity(1))
	ops := creds(t, ca, clustertls.ClientIdentity("ops"))
	whoami := func(ctx context.Context, _ byte, _, out []byte) (byte, []byte) {
		cs, ok := PeerTLS(ctx)
		if !ok {
			return ErrorAnswer(out, CodeRefused, "no TLS")
		}
		id, err := clustertls.PeerIdentity(cs)
		if err != nil {
			return ErrorAnswer(out, CodeRefused, err.Error())
		}
		return RespOK, append(out, id.String()...)
	}
	l := testLimits()
	l.ReadTimeout = 500 * time.Millisecond
	s, err := NewServer(l, whoami, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	s.UseTLS(node.ServerConfig(nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()

	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	c := NewClient(ln.Addr().String(), DialTLS(ops.ClientConfig(1)))
	defer c.Close()
	typ, body, err := c.Call(cctx, ReqStatus, nil)
	if err != nil || typ != RespOK || string(body) != `client "ops"` {
		t.Fatalf("TLS call: %#x %q %v", typ, body, err)
	}
	// No client certificate.
	anon := NewClient(ln.Addr().String(), DialTLS(&tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}))
	defer anon.Close()
	if _, _, err := anon.Call(cctx, ReqStatus, nil); err == nil {
		t.Error("a client without a certificate was answered")
	}
	// Plain TCP: the frame is not TLS; the server drops the connection
	// within the read timeout.
	plain := NewClient(ln.Addr().String(), nil)
	defer plain.Close()
	start := time.Now()
	if _, _, err := plain.Call(cctx, ReqStatus, nil); err == nil {
		t.Error("a plain-TCP client was answered")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("plain-TCP client held for %v", d)
	}
	// A silent connection that never starts TLS is dropped too.
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := readsEOF(raw, 3*time.Second); err != nil {
		t.Errorf("silent pre-TLS connection: %v", err)
	}
}

// BenchmarkClientConnect is a new client connection and its first
// request; BenchmarkClientCall a request on an open connection. Plain
// TCP and mutual TLS 1.3 on loopback.
func BenchmarkClientConnect(b *testing.B) { benchClient(b, true) }
func BenchmarkClientCall(b *testing.B)    { benchClient(b, false) }

func benchClient(b *testing.B, reconnect bool) {
	ca, err := clustertls.NewCA("bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	mk := func(id clustertls.Identity) *clustertls.Credentials {
		c, err := clustertls.IssueCredentials(ca, id, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	node, client := mk(clustertls.NodeIdentity(1)), mk(clustertls.ClientIdentity("bench"))
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			s, err := NewServer(DefaultLimits(), echo, nil)
			if err != nil {
				b.Fatal(err)
			}
			var dial DialFunc
			if mode == "tls" {
				s.UseTLS(node.ServerConfig(nil))
				dial = DialTLS(client.ClientConfig(1))
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = s.Serve(ctx, ln); close(done) }()
			defer func() { cancel(); <-done }()
			c := NewClient(ln.Addr().String(), dial)
			defer c.Close()
			body := make([]byte, 64)
			b.ResetTimer()
			for range b.N {
				if reconnect {
					c.Close()
				}
				if _, _, err := c.Call(ctx, ReqPropose, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
