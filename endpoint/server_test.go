package endpoint

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// echo answers every request with its body.
func echo(_ context.Context, typ byte, body, out []byte) (byte, []byte) {
	return RespOK, append(out, body...)
}

type testServer struct {
	s    *Server
	addr string
	stop func()
}

func startServer(t *testing.T, l Limits) *testServer {
	t.Helper()
	s, err := NewServer(l, echo, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	ts := &testServer{s: s, addr: ln.Addr().String()}
	ts.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			ts.stop()
		}
	})
	return ts
}

func testLimits() Limits {
	l := DefaultLimits()
	l.MaxRequestBytes = 4097
	return l
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readsEOF reports whether the server closed c within d (reading any
// answer frames first).
func readsEOF(c net.Conn, d time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if err != nil {
		return err
	}
	return nil
}

func TestRoundTrip(t *testing.T) {
	ts := startServer(t, testLimits())
	c := NewClient(ts.addr, nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, body := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("y"), 4096)} {
		typ, got, err := c.Call(ctx, ReqPropose, body)
		if err != nil || typ != RespOK || !bytes.Equal(got, body) {
			t.Fatalf("Call(%d bytes) = %#x, %d bytes, %v", len(body), typ, len(got), err)
		}
	}
}

// A length header claiming 256 MiB is refused from the header alone: the
// reader allocates nothing near what it claims.
func TestReadFrameRefusesOversizedBeforeAllocating(t *testing.T) {
	hdr := binary.LittleEndian.AppendUint32(nil, 256<<20)
	in := append(hdr, "trailing bytes"...)
	allocated := allocatedBy(func() {
		_, _, _, err := ReadFrame(bytes.NewReader(in), nil, 4097)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("err = %v, want ErrFrameTooLarge", err)
		}
	})
	if allocated > 64<<10 {
		t.Errorf("allocated %d bytes for a refused frame", allocated)
	}
	// Even under a generous cap, the buffer grows only with the bytes
	// that arrive.
	allocated = allocatedBy(func() {
		_, _, _, err := ReadFrame(bytes.NewReader(in), nil, 1<<30)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v, want ErrUnexpectedEOF", err)
		}
	})
	if allocated > 1<<20 {
		t.Errorf("allocated %d bytes for a 256 MiB claim with 14 bytes behind it", allocated)
	}
	if _, _, _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 0}), nil, 10); !errors.Is(err, ErrBadFrame) {
		t.Errorf("empty frame: %v", err)
	}
}

func allocatedBy(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// Attack: an oversized frame gets a too-large answer and the connection
// is closed without the body being read.
func TestServerRefusesOversizedFrame(t *testing.T) {
	ts := startServer(t, testLimits())
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(binary.LittleEndian.AppendUint32(nil, 256<<20)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, body, _, err := ReadFrame(bufio.NewReader(c), nil, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if typ != RespError || len(body) == 0 || body[0] != CodeTooLarge {
		t.Fatalf("answer %#x %q, want a too-large error", typ, body)
	}
	if err := readsEOF(c, 5*time.Second); err != nil {
		t.Fatalf("connection not closed after an oversized frame: %v", err)
	}
	// One byte over the cap is refused too; the cap itself passes.
	cl := NewClient(ts.addr, nil)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := cl.Call(ctx, ReqPropose, make([]byte, 4096)); err != nil {
		t.Fatalf("a frame at the cap: %v", err)
	}
	typ, body, err = cl.Call(ctx, ReqPropose, make([]byte, 4097))
	if err != nil || typ != RespError || body[0] != CodeTooLarge {
		t.Fatalf("a frame one byte over the cap: %#x %q %v", typ, body, err)
	}
}

// Attack: slowloris. Connections that send nothing are dropped after the
// idle timeout, and one that trickles a frame after the read timeout; an
// honest client is served throughout.
func TestServerDropsSlowloris(t *testing.T) {
	l := testLimits()
	l.MaxConns = 64
	l.IdleTimeout = 150 * time.Millisecond
	l.ReadTimeout = 300 * time.Millisecond
	ts := startServer(t, l)

	var conns []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns)+1)
	for _, c := range conns {
		wg.Go(func() {
			if err := readsEOF(c, 5*time.Second); err != nil {
				errs <- err
			}
		})
	}
	// The trickler sends a header for 4000 bytes, then one byte every
	// 100 ms: each under the idle timeout, the frame never complete.
	tr, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	trickleDone := make(chan time.Duration, 1)
	go func() {
		t0 := time.Now()
		if _, err := tr.Write(binary.LittleEndian.AppendUint32(nil, 4000)); err != nil {
			errs <- err
			return
		}
		for range 100 {
			time.Sleep(100 * time.Millisecond)
			if _, err := tr.Write([]byte{1}); err != nil {
				break // the server hung up
			}
		}
		_ = readsEOF(tr, 5*time.Second)
		trickleDone <- time.Since(t0)
	}()
	wg.Wait()
	idleDropped := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatalf("a silent connection was not dropped: %v", err)
	}
	if idleDropped > 3*time.Second {
		t.Errorf("silent connections dropped after %v, idle timeout %v", idleDropped, l.IdleTimeout)
	}
	d := <-trickleDone
	if d > 3*time.Second {
		t.Errorf("trickling client held its connection for %v, read timeout %v", d, l.ReadTimeout)
	}
	waitFor(t, 5*time.Second, "every slow connection released", func() bool { return ts.s.Active() == 0 })
	c := NewClient(ts.addr, nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := c.Call(ctx, ReqStatus, nil); err != nil {
		t.Fatalf("honest client after the attack: %v", err)
	}
}

// Attack: connection flood. Connections beyond MaxConns are answered busy
// and closed at once; those within the limit keep working, and a slot
// freed is usable again.
func TestServerRefusesConnectionFlood(t *testing.T) {
	l := testLimits()
	l.MaxConns = 4
	ts := startServer(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var held []*Client
	for range l.MaxConns {
		c := NewClient(ts.addr, nil)
		defer c.Close()
		if _, _, err := c.Call(ctx, ReqStatus, nil); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	start := time.Now()
	for i := range 100 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		typ, body, _, err := ReadFrame(bufio.NewReader(c), nil, 1<<10)
		c.Close()
		if err != nil || typ != RespError || len(body) == 0 || body[0] != CodeBusy {
			t.Fatalf("connection %d beyond the limit: %#x %q %v, want a busy answer", i, typ, body, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("100 refusals took %v", d)
	}
	if got := ts.s.Refused(); got != 100 {
		t.Errorf("Refused() = %d, want 100", got)
	}
	for _, c := range held {
		if _, _, err := c.Call(ctx, ReqStatus, nil); err != nil {
			t.Fatalf("a connection within the limit broke during the flood: %v", err)
		}
	}
	held[0].Close()
	waitFor(t, 5*time.Second, "the closed slot freed", func() bool { return ts.s.Active() == l.MaxConns-1 })
	c := NewClient(ts.addr, nil)
	defer c.Close()
	if _, _, err := c.Call(ctx, ReqStatus, nil); err != nil {
		t.Fatalf("new connection after a slot freed: %v", err)
	}
}

// Each closed connection leaves nothing running: the goroutine count
// returns to where it was, and all of the server's go when it stops.
func TestServerLeaksNoGoroutines(t *testing.T) {
	settle := func(limit int) int {
		n := runtime.NumGoroutine()
		for end := time.Now().Add(5 * time.Second); n > limit && time.Now().Before(end); n = runtime.NumGoroutine() {
			time.Sleep(10 * time.Millisecond)
		}
		return n
	}
	before := runtime.NumGoroutine()
	ts := startServer(t, testLimits())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 300 {
		c := NewClient(ts.addr, nil)
		if _, _, err := c.Call(ctx, ReqStatus, []byte("x")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for range 100 { // hang-ups mid-frame
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte{9, 0})
		c.Close()
	}
	waitFor(t, 5*time.Second, "connections released", func() bool { return ts.s.Active() == 0 })
	// The accept loop and its context callback remain.
	if n := settle(before + 2); n > before+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after 400 closed connections, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	// Connections still open when the server stops are closed by it.
	for range 10 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitFor(t, 5*time.Second, "10 connections accepted", func() bool { return ts.s.Active() == 10 })
	ts.stop()
	if n := settle(before); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after the server stopped, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, mut := range []func(*Limits){
		func(l *Limits) { l.MaxConns = 0 },
		func(l *Limits) { l.IdleTimeout = 0 },
		func(l *Limits) { l.ReadTimeout = -1 },
		func(l *Limits) { l.WriteTimeout = 0 },
		func(l *Limits) { l.MaxRequestBytes = 0 },
	} {
		l := DefaultLimits()
		mut(&l)
		if _, err := NewServer(l, echo, nil); err == nil {
			t.Errorf("accepted %+v", l)
		}
	}
}
