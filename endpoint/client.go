package endpoint

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// DefaultMaxAnswerBytes bounds an answer a Client reads: a log dump is the
// longest, and the node bounds the log it keeps.
const DefaultMaxAnswerBytes = 1 << 30

// DialFunc opens a connection to addr (plain TCP, or TLS).
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// DialTCP is the plain-TCP DialFunc.
func DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// DialTLS is a DialFunc that runs TLS with cfg over TCP.
func DialTLS(cfg *tls.Config) DialFunc {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", addr)
	}
}

// Client is one connection to a node's client endpoint, dialed on first
// use and again after any failure. Safe for concurrent use; calls are
// serialized.
type Client struct {
	addr           string
	dial           DialFunc
	maxAnswerBytes int

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	buf  []byte
}

// NewClient returns a client of the endpoint at addr; dial nil means
// DialTCP.
func NewClient(addr string, dial DialFunc) *Client {
	if dial == nil {
		dial = DialTCP
	}
	return &Client{addr: addr, dial: dial, maxAnswerBytes: DefaultMaxAnswerBytes}
}

// Addr is the endpoint's address.
func (c *Client) Addr() string { return c.addr }

// Close drops the connection; a later call dials again.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close() // between calls: a TLS close_notify is in order
		c.conn = nil
	}
}

// drop abandons the connection after a failure. A TLS connection is cut
// below TLS, without close_notify: after a failed write the record layer
// has counted a record the server never received whole, so an alert sent
// now would carry the wrong sequence number, or land inside the cut
// record, and the server would fail it as a bad record MAC.
func (c *Client) drop() {
	if c.conn == nil {
		return
	}
	if tc, ok := c.conn.(*tls.Conn); ok {
		tc.NetConn().Close()
	} else {
		c.conn.Close()
	}
	c.conn = nil
}

// Call sends one request and reads the answer. A transport failure or a
// deadline drops the connection (an answer may still be in flight on it);
// the next call dials again.
func (c *Client) Call(ctx context.Context, typ byte, body []byte) (byte, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A call that waited for the lock past its deadline sends nothing:
	// a write bound to fail would cost the connection.
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if c.conn == nil {
		conn, err := c.dial(ctx, c.addr)
		if err != nil {
			return 0, nil, err
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c.conn, c.r, c.w = conn, bufio.NewReader(conn), bufio.NewWriter(conn)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Time{}
	}
	_ = c.conn.SetDeadline(dl)
	if err := WriteFrame(c.w, typ, body); err != nil {
		c.drop()
		return 0, nil, err
	}
	rt, rb, reuse, err := ReadFrame(c.r, c.buf, c.maxAnswerBytes)
	if err != nil {
		c.drop()
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return 0, nil, err
	}
	if rt == RespError && len(rb) > 0 && (rb[0] == CodeBusy || rb[0] == CodeTooLarge) {
		c.drop() // the server closes after these
	}
	c.buf = reuse[:0]
	if cap(c.buf) > growStep {
		c.buf = nil
	}
	// The answer is copied: c.buf is reused by the next call, which may
	// come from another goroutine as soon as the lock is released.
	return rt, bytes.Clone(rb), nil
}
