package endpoint

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what clients may cost a server.
type Limits struct {
	// MaxConns is how many connections are served at once; a connection
	// beyond it gets a CodeBusy answer and is closed at once.
	MaxConns int
	// IdleTimeout closes a connection that starts no request for this
	// long (a client that connects and sends nothing holds nothing).
	IdleTimeout time.Duration
	// ReadTimeout bounds receiving a request once its first byte arrived
	// (a client that trickles a frame is dropped).
	ReadTimeout time.Duration
	// WriteTimeout bounds sending one answer.
	WriteTimeout time.Duration
	// MaxRequestBytes bounds a request frame (type byte included); a
	// longer one gets a CodeTooLarge answer and the connection is closed,
	// before its body is read or allocated.
	MaxRequestBytes int
}

// DefaultLimits suit a node whose largest proposal is 4 KiB.
func DefaultLimits() Limits {
	return Limits{
		MaxConns:        256,
		IdleTimeout:     5 * time.Minute,
		ReadTimeout:     10 * time.Second,
		WriteTimeout:    10 * time.Second,
		MaxRequestBytes: 4096 + 1,
	}
}

// Validate names the first bad field.
func (l Limits) Validate() error {
	switch {
	case l.MaxConns < 1:
		return fmt.Errorf("endpoint: Limits.MaxConns %d: must be at least 1", l.MaxConns)
	case l.IdleTimeout <= 0:
		return fmt.Errorf("endpoint: Limits.IdleTimeout %v: must be positive", l.IdleTimeout)
	case l.ReadTimeout <= 0:
		return fmt.Errorf("endpoint: Limits.ReadTimeout %v: must be positive", l.ReadTimeout)
	case l.WriteTimeout <= 0:
		return fmt.Errorf("endpoint: Limits.WriteTimeout %v: must be positive", l.WriteTimeout)
	case l.MaxRequestBytes < 1:
		return fmt.Errorf("endpoint: Limits.MaxRequestBytes %d: must be at least 1", l.MaxRequestBytes)
	}
	return nil
}

// Handler answers one request: it appends the answer's body to out and
// returns its type. body is only valid during the call.
type Handler func(ctx context.Context, typ byte, body, out []byte) (byte, []byte)

// Server serves the framed protocol under Limits.
type Server struct {
	limits  Limits
	handler Handler
	logf    func(format string, args ...any)
	tls     *tls.Config

	active  atomic.Int64
	refused atomic.Int64
}

// NewServer validates limits. logf, if not nil, hears why connections
// ended abnormally.
func NewServer(limits Limits, h Handler, logf func(format string, args ...any)) (*Server, error) {
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("endpoint: nil handler")
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Server{limits: limits, handler: h, logf: logf}, nil
}

// UseTLS makes Serve and ServeConn run every connection inside TLS with
// cfg (call before Serve). A handler reads the peer's verified
// certificates with PeerTLS.
func (s *Server) UseTLS(cfg *tls.Config) { s.tls = cfg }

type tlsKey struct{}

// PeerTLS returns the TLS state of the connection a Handler serves, when
// the server uses TLS.
func PeerTLS(ctx context.Context) (tls.ConnectionState, bool) {
	cs, ok := ctx.Value(tlsKey{}).(tls.ConnectionState)
	return cs, ok
}

// Active is the number of connections being served.
func (s *Server) Active() int { return int(s.active.Load()) }

// Refused counts connections turned away for exceeding MaxConns.
func (s *Server) Refused() int64 { return s.refused.Load() }

// refuseAnswer is written to a connection beyond the limit: a short frame
// that fits the socket buffer, so the write does not block.
var refuseAnswer = AppendFrame(nil, RespError, append([]byte{CodeBusy}, "too many client connections; retry later"...))

// Serve accepts on ln until ctx ends, then closes ln, waits for the
// connections it serves to end and returns nil. An accept failure that is
// not the listener closing (such as running out of file descriptors) is
// retried after a pause.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	pause := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.logf("accept: %v (retrying in %v)", err, pause)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 5 * time.Millisecond
		if s.active.Add(1) > int64(s.limits.MaxConns) {
			s.active.Add(-1)
			s.refused.Add(1)
			_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = conn.Write(refuseAnswer)
			_ = conn.Close()
			continue
		}
		wg.Go(func() {
			defer s.active.Add(-1)
			s.ServeConn(ctx, conn)
		})
	}
}

// ServeConn serves one connection until the client hangs up, breaks a
// limit, or ctx ends; it closes conn. It does not count against MaxConns.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	// The TCP connection itself is closed, at the end and on ctx end: the
	// callback must not read conn, which becomes the TLS layer below
	// while the callback may already run.
	raw := conn
	defer raw.Close()
	// Close on ctx end interrupts a blocked read; stop() releases the
	// callback when the connection ends first, so nothing is left waiting.
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if s.tls != nil {
		// The handshake is a request like any other: bounded by the read
		// timeout, so an unauthenticated client holds nothing for long.
		_ = conn.SetDeadline(time.Now().Add(s.limits.ReadTimeout))
		tc := tls.Server(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			s.ended(ctx, conn, "TLS handshake", err)
			return
		}
		_ = conn.SetDeadline(time.Time{})
		ctx = context.WithValue(ctx, tlsKey{}, tc.ConnectionState())
		conn = tc
	}
	r, w := bufio.NewReaderSize(conn, 4096), bufio.NewWriterSize(conn, 4096)
	var buf, out []byte
	for {
		_ = conn.SetReadDeadline(time.Now().Add(s.limits.IdleTimeout))
		if _, err := r.Peek(1); err != nil {
			s.ended(ctx, conn, "idle", err)
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(s.limits.ReadTimeout))
		typ, body, reuse, err := ReadFrame(r, buf, s.limits.MaxRequestBytes)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrBadFrame) {
				code := CodeOther
				if errors.Is(err, ErrFrameTooLarge) {
					code = CodeTooLarge
				}
				rt, ob := ErrorAnswer(out[:0], code, err.Error())
				_ = conn.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout))
				_ = WriteFrame(w, rt, ob)
			}
			s.ended(ctx, conn, "reading a request", err)
			return
		}
		_ = conn.SetReadDeadline(time.Time{})
		var rt byte
		rt, out = s.handler(ctx, typ, body, out[:0])
		_ = conn.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout))
		if err := WriteFrame(w, rt, out); err != nil {
			s.ended(ctx, conn, "writing an answer", err)
			return
		}
		// Keep small buffers for the next request; let a large one go so
		// an idle connection holds little.
		buf = reuse
		if cap(buf) > growStep {
			buf = nil
		}
		if cap(out) > growStep {
			out = nil
		}
	}
}

func (s *Server) ended(ctx context.Context, conn net.Conn, what string, err error) {
	if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	s.logf("client %s: %s: %v", conn.RemoteAddr(), what, err)
}
