package endpoint

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
)

// Many goroutines share TLS clients whose calls have short deadlines, some
// spent waiting for another caller's slow request and some expired on the
// way in, while the server and the callers reset connections. The server
// must never see a record it cannot authenticate ("bad record MAC"): a
// connection dropped after a failed write must not send close_notify,
// which the TLS layer would encrypt with the sequence number of the
// record that never went out, or splice into the half of one that did.
func TestClientTLSConcurrentResets(t *testing.T) {
	ca, err := clustertls.NewCA("t", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	node := creds(t, ca, clustertls.NodeIdentity(1))
	ops := creds(t, ca, clustertls.ClientIdentity("ops"))

	var (
		logMu  sync.Mutex
		logged []string
	)
	logf := func(format string, args ...any) {
		logMu.Lock()
		logged = append(logged, fmt.Sprintf(format, args...))
		logMu.Unlock()
	}
	// The handler is sometimes slow (a proposal waiting to commit), so
	// callers queued behind it on the same client run out of time.
	var calls atomic.Int64
	h := func(_ context.Context, typ byte, body, out []byte) (byte, []byte) {
		if calls.Add(1)%7 == 0 {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
		return RespOK, append(out, body...)
	}
	l := testLimits()
	l.ReadTimeout = 2 * time.Second
	s, err := NewServer(l, h, logf)
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

	const (
		clients  = 4
		callers  = 4 // goroutines per client
		duration = 2 * time.Second
	)
	var wg sync.WaitGroup
	var answered, failed atomic.Int64
	end := time.Now().Add(duration)
	for i := 0; i < clients; i++ {
		c := NewClient(ln.Addr().String(), DialTLS(ops.ClientConfig(1)))
		defer c.Close()
		for j := 0; j < callers; j++ {
			wg.Go(func() {
				body := make([]byte, 1+rand.IntN(4000))
				for time.Now().Before(end) {
					switch rand.IntN(40) {
					case 0:
						c.Close() // a reconnect from the caller's side
						continue
					case 1:
						// A deadline already past when the call starts.
						dctx, dcancel := context.WithDeadline(ctx, time.Now().Add(-time.Millisecond))
						_, _, _ = c.Call(dctx, ReqPropose, body)
						dcancel()
						continue
					}
					cctx, ccancel := context.WithTimeout(ctx, time.Duration(1+rand.IntN(50))*time.Millisecond)
					typ, got, err := c.Call(cctx, ReqPropose, body)
					ccancel()
					if err != nil {
						failed.Add(1)
						continue
					}
					if typ != RespOK || string(got) != string(body) {
						t.Errorf("answer %#x of %d bytes to a request of %d", typ, len(got), len(body))
						return
					}
					answered.Add(1)
				}
			})
		}
	}
	wg.Wait()
	cancel()
	<-done
	t.Logf("%d answered, %d failed on their deadline or a reset", answered.Load(), failed.Load())
	if answered.Load() == 0 {
		t.Error("no call was answered")
	}
	logMu.Lock()
	defer logMu.Unlock()
	for _, m := range logged {
		if strings.Contains(m, "bad record MAC") || strings.Contains(m, "record overflow") || strings.Contains(m, "unexpected message") {
			t.Errorf("server: %s", m)
		}
	}
}
