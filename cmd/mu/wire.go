package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
)

// The client endpoint speaks length-prefixed frames over TCP: a 4-byte
// little-endian length of what follows, then a 1-byte type and the body.
// A connection carries one request at a time.
const (
	reqPropose byte = 1 // body: the command
	reqStatus  byte = 2 // body: empty
	reqLog     byte = 3 // body: empty
	reqRejoin  byte = 4 // body: u16 id of a restarted peer that waits to be dialed
	reqTerms   byte = 5 // body: empty; the leader-change history alone

	respOK        byte = 0x81 // body: u64 index (propose), or JSON (status, log), or empty
	respNotLeader byte = 0x82 // body: u16 leader, u8 known, then the leader's client address
	respError     byte = 0x83 // body: u8 code, then a message
)

// Error codes in respError.
const (
	codeOther          byte = 0
	codeUnknownOutcome byte = 1 // leadership lost after the write: resend
	codeFenced         byte = 2
	codeStopped        byte = 3 // not running yet, or shutting down
	codeTooLarge       byte = 4
	codeQueueFull      byte = 5
	codeTimeout        byte = 6
)

// maxFrameBytes bounds a frame: a proposal is at most a slot's payload,
// a log answer may carry the whole applied log.
const maxFrameBytes = 256 << 20

func writeFrame(w *bufio.Writer, typ byte, body []byte) error {
	var h [5]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(len(body)+1))
	h[4] = typ
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame reads one frame into buf (grown as needed).
func readFrame(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, buf, err
	}
	n := binary.LittleEndian.Uint32(h[:])
	if n < 1 || n > maxFrameBytes {
		return 0, buf, fmt.Errorf("frame length %d outside 1..%d", n, maxFrameBytes)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, buf, err
	}
	return buf[0], buf[1:], nil
}

// nodeStatus is what `mu status` shows of one node.
type nodeStatus struct {
	ID          rdma.NodeID            `json:"id"`
	Leader      rdma.NodeID            `json:"leader"`
	LeaderKnown bool                   `json:"leader_known"`
	IsLeader    bool                   `json:"is_leader"`
	Fenced      bool                   `json:"fenced"`
	Commit      consensus.Index        `json:"commit_index"`
	Applied     consensus.Index        `json:"applied_index"`
	Scores      map[rdma.NodeID]int    `json:"scores"`
	Alive       map[rdma.NodeID]bool   `json:"alive"`
	PeerHealth  map[rdma.NodeID]string `json:"peer_health"`
	Health      string                 `json:"health"`       // own advertised health
	Hardware    string                 `json:"hardware"`     // hwmon verdict
	HardwareWhy []string               `json:"hardware_why"` // its reasons
	Device      string                 `json:"device"`
	Rejoining   bool                   `json:"rejoining"`
	LeaderTerms uint64                 `json:"leader_terms"`
	UptimeNs    int64                  `json:"uptime_ns"`
	Pid         int                    `json:"pid"`
	// Conns is each peer's connection state per plane and the access it
	// grants, for diagnosis.
	Conns map[rdma.NodeID]string `json:"conns"`
	// Detector counts reads posted, failed and late.
	Detector pullscore.Stats `json:"detector"`
	// FailSlow is, on the leader, each fail-slow follower's layer-2 state
	// (write-latency p99 against its own baseline).
	FailSlow map[rdma.NodeID]string `json:"fail_slow,omitempty"`
}

// logAnswer is a node's applied log and leader-change history.
type logAnswer struct {
	Log   nodeLog         `json:"log"`
	Terms []failoverSteps `json:"terms"`
}

// nodeClient is one TCP connection to a node's client endpoint.
type nodeClient struct {
	addr string
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	buf  []byte
}

func newNodeClient(addr string) *nodeClient { return &nodeClient{addr: addr} }

func (c *nodeClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop()
}

func (c *nodeClient) drop() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// call sends one request and reads the answer. A transport failure or a
// deadline drops the connection (an answer may still be in flight on it);
// the next call dials again.
func (c *nodeClient) call(ctx context.Context, typ byte, body []byte) (byte, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.addr)
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
	if err := writeFrame(c.w, typ, body); err != nil {
		c.drop()
		return 0, nil, err
	}
	rt, rb, err := readFrame(c.r, c.buf)
	if err != nil {
		c.drop()
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return 0, nil, err
	}
	c.buf = rb[:0]
	// The answer is copied: c.buf is reused by the next call, which may
	// come from another goroutine as soon as the lock is released.
	return rt, bytes.Clone(rb), nil
}

// errNodeOutcome is a node's error answer, with the sentinel it matches.
type errNodeOutcome struct {
	code byte
	msg  string
}

func (e *errNodeOutcome) Error() string { return e.msg }
func (e *errNodeOutcome) Is(t error) bool {
	switch e.code {
	case codeUnknownOutcome:
		return t == consensus.ErrLeadershipLost
	case codeFenced:
		return t == consensus.ErrFenced
	case codeStopped:
		return t == consensus.ErrStopped
	case codeTooLarge:
		return t == consensus.ErrTooLarge
	case codeQueueFull:
		return t == consensus.ErrQueueFull
	case codeTimeout:
		return t == context.DeadlineExceeded
	}
	return false
}

// propose asks the node to replicate cmd.
func (c *nodeClient) propose(ctx context.Context, cmd []byte) (consensus.Index, error) {
	t, b, err := c.call(ctx, reqPropose, cmd)
	if err != nil {
		return 0, err
	}
	switch t {
	case respOK:
		if len(b) != 8 {
			return 0, fmt.Errorf("propose answer of %d bytes", len(b))
		}
		return consensus.Index(binary.LittleEndian.Uint64(b)), nil
	case respNotLeader:
		if len(b) < 3 {
			return 0, errors.New("short not-leader answer")
		}
		return 0, &consensus.NotLeaderError{Leader: rdma.NodeID(binary.LittleEndian.Uint16(b)), Known: b[2] == 1}
	case respError:
		if len(b) < 1 {
			return 0, errors.New("short error answer")
		}
		return 0, &errNodeOutcome{b[0], string(b[1:])}
	}
	return 0, fmt.Errorf("unexpected answer type %#x", t)
}

func (c *nodeClient) jsonCall(ctx context.Context, typ byte, v any) error {
	t, b, err := c.call(ctx, typ, nil)
	if err != nil {
		return err
	}
	if t == respError && len(b) > 0 {
		return &errNodeOutcome{b[0], string(b[1:])}
	}
	if t != respOK {
		return fmt.Errorf("unexpected answer type %#x", t)
	}
	return json.Unmarshal(b, v)
}

func (c *nodeClient) status(ctx context.Context) (nodeStatus, error) {
	var s nodeStatus
	err := c.jsonCall(ctx, reqStatus, &s)
	return s, err
}

func (c *nodeClient) log(ctx context.Context) (logAnswer, error) {
	var l logAnswer
	err := c.jsonCall(ctx, reqLog, &l)
	return l, err
}

func (c *nodeClient) terms(ctx context.Context) ([]failoverSteps, error) {
	var t []failoverSteps
	err := c.jsonCall(ctx, reqTerms, &t)
	return t, err
}

func (c *nodeClient) rejoin(ctx context.Context, id rdma.NodeID) error {
	t, b, err := c.call(ctx, reqRejoin, binary.LittleEndian.AppendUint16(nil, uint16(id)))
	if err != nil {
		return err
	}
	if t != respOK {
		if t == respError && len(b) > 0 {
			return &errNodeOutcome{b[0], string(b[1:])}
		}
		return fmt.Errorf("unexpected answer type %#x", t)
	}
	return nil
}
