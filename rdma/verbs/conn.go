package verbs

import (
	"fmt"
	"sync"
	"sync/atomic"

	ibv "github.com/rdmaconsensus/mu/cgo/verbs"
	"github.com/rdmaconsensus/mu/rdma"
)

// slot remembers what a posted work request was, so its completion can
// carry the caller's ID and op: the verbs wr_id is the connection's post
// sequence number, and error completions carry no opcode.
type slot struct {
	id       uint64
	op       rdma.Op
	signaled bool
}

// qpair is one RC queue pair: one incarnation of a Conn, from the Prepare
// that made it until a later handshake replaces it or the fabric closes.
type qpair struct {
	conn   *Conn
	qp     *ibv.QP
	qpn    uint32
	local  rdma.Endpoint
	remote rdma.Endpoint
	params ibv.ConnParams
	access rdma.Access // set at connect

	ring []slot // indexed by sequence & mask
	mask uint64
	// posted is the next sequence number; done is one past the newest
	// completion Poll has seen. posted-done is what the send queue holds.
	posted atomic.Uint64
	done   atomic.Uint64
	// floor: completions with a smaller sequence predate the last Reset.
	// Guarded by Fabric.mu.
	floor uint64
}

// Conn is the stable connection to one peer on one plane. It implements
// rdma.Conn. It exists from New until Close, whatever handshakes happen: a
// handshake builds a new queue pair beside the one in service and swaps it
// in only once both sides committed (Fabric.Activate), so what the protocol
// holds never dangles and a failed handshake changes nothing here.
type Conn struct {
	f     *Fabric
	peer  rdma.NodeID
	plane rdma.Plane

	// mu is held shared by Post, SetRemoteAccess, Reset and State, and
	// exclusively by a swap and by Close, so no operation runs on a queue
	// pair being replaced or destroyed.
	mu  sync.RWMutex
	cur *qpair // in service; nil before the first handshake
	// swaps counts queue pairs put in service (under mu).
	swaps  uint64
	closed atomic.Bool
	access atomic.Uint32 // rdma.Access of the queue pair in service

	wrBuf []ibv.SendWR // Post's translation buffer
}

var _ rdma.Conn = (*Conn)(nil)

func (c *Conn) Peer() rdma.NodeID         { return c.peer }
func (c *Conn) Plane() rdma.Plane         { return c.plane }
func (c *Conn) RemoteAccess() rdma.Access { return rdma.Access(c.access.Load()) }

// QPN is the number of the queue pair in service (0 before the first).
func (c *Conn) QPN() uint32 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cur == nil {
		return 0
	}
	return c.cur.qpn
}

// Swaps is how many queue pairs have been put in service.
func (c *Conn) Swaps() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.swaps
}

// Local is the endpoint of the queue pair in service as sent to the peer;
// Remote the one received.
func (c *Conn) Local() rdma.Endpoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cur == nil {
		return rdma.Endpoint{}
	}
	return c.cur.local
}

func (c *Conn) Remote() rdma.Endpoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cur == nil {
		return rdma.Endpoint{}
	}
	return c.cur.remote
}

func (c *Conn) String() string {
	return fmt.Sprintf("verbs conn %d->%d %v", c.f.cfg.Self, c.peer, c.plane)
}

func (q *qpair) String() string {
	return fmt.Sprintf("verbs conn %d->%d %v (qpn %#x)", q.conn.f.cfg.Self, q.conn.peer, q.conn.plane, q.qpn)
}

func toVerbsAccess(a rdma.Access) ibv.Access {
	var v ibv.Access
	if a&rdma.AccessRemoteRead != 0 {
		v |= ibv.AccessRemoteRead
	}
	if a&rdma.AccessRemoteWrite != 0 {
		v |= ibv.AccessRemoteWrite
	}
	if a&rdma.AccessRemoteAtomic != 0 {
		v |= ibv.AccessRemoteAtomic
	}
	return v
}

// connect moves the queue pair to RTS towards ep, letting the peer do a.
func (q *qpair) connect(ep rdma.Endpoint, a rdma.Access) error {
	f := q.conn.f
	q.remote = ep
	q.params = ibv.ConnParams{
		DGID: ibv.GID(ep.GID), DestQPN: ep.QPN, RQPSN: ep.PSN, SQPSN: q.local.PSN,
		Access: toVerbsAccess(a),
		Port:   f.cfg.Port, SGIDIndex: uint8(f.gidIndex), HopLimit: 64, PathMTU: f.pathMTU,
		Timeout: f.cfg.TimeoutExp, RetryCount: f.cfg.RetryCount, RNRRetry: f.cfg.RNRRetry,
		MinRNRTimer: 12, MaxRdAtomic: f.rdAtomic, MaxDestRdAtomic: f.rdAtomic,
	}
	if err := q.qp.Connect(&q.params); err != nil {
		return fmt.Errorf("%v: connect: %w", q, err)
	}
	q.access = a
	return nil
}

// flushOwed queues a flushed completion for every signaled request q still
// owes and forgets them, as verbs does for a queue pair in ERROR: a reset
// or a destroy discards them without completions. Called under Fabric.mu,
// after parkCQ kept whatever real statuses had arrived.
func (q *qpair) flushOwed() {
	f := q.conn.f
	posted := q.posted.Load()
	for seq := q.done.Load(); seq < posted; seq++ {
		s := &q.ring[seq&q.mask]
		if s.signaled && len(f.pending) < cap(f.pending) {
			f.pending = append(f.pending, rdma.Completion{ID: s.id, Op: s.op, Status: rdma.StatusFlushed, Peer: q.conn.peer, Plane: q.conn.plane})
		}
	}
	q.floor = posted
	q.done.Store(posted)
}

// Preallocated so a busy poster hitting a full queue does not allocate.
var (
	errQueueFull = fmt.Errorf("rdma/verbs: post: %w", rdma.ErrQueueFull)
	errClosed    = fmt.Errorf("rdma/verbs: post: %w", rdma.ErrClosed)
	errNotConn   = fmt.Errorf("rdma/verbs: post before Connect: %w", rdma.ErrConnError)
)

// Post translates wrs into verbs work requests and posts them as one chain:
// one crossing into C per call (per SendQueueDepth requests). It checks
// every offset against both regions first. On a connection in ERROR the
// requests are accepted and complete as flushed, as verbs does.
func (c *Conn) Post(wrs []rdma.WorkRequest) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return 0, errClosed
	}
	q := c.cur
	if q == nil {
		return 0, errNotConn
	}
	f := c.f
	lkey := f.lkey[c.plane]
	localLen, remoteLen := uint64(f.mem.Len()), q.remote.Length
	rkey := q.remote.RKey
	localBase, remoteBase := f.mem.Addr(), q.remote.Addr
	total := 0
	for total < len(wrs) {
		seq := q.posted.Load()
		free := int(uint64(len(q.ring)) - (seq - q.done.Load()))
		if free <= 0 {
			return total, errQueueFull
		}
		chunk := min(len(wrs)-total, free)
		var bad error
		for i := range chunk {
			w := &wrs[total+i]
			if err := checkWR(w, localLen, remoteLen); err != nil {
				chunk, bad = i, err
				break
			}
			v := &c.wrBuf[i]
			*v = ibv.SendWR{
				ID: seq + uint64(i), LocalAddr: localBase + w.LocalOffset, LKey: lkey,
				RemoteAddr: remoteBase + w.RemoteOffset, RKey: rkey, Length: w.Length,
			}
			switch w.Op {
			case rdma.OpWrite:
				v.Opcode = ibv.OpWrite
			case rdma.OpRead:
				v.Opcode = ibv.OpRead
			case rdma.OpCompareSwap:
				v.Opcode, v.CompareAdd, v.Swap = ibv.OpCompareSwap, w.Compare, w.Swap
			}
			if !w.Unsignaled {
				v.Flags = ibv.FlagSignaled
			}
			q.ring[(seq+uint64(i))&q.mask] = slot{id: w.ID, op: w.Op, signaled: !w.Unsignaled}
		}
		n := 0
		var err error
		if chunk > 0 {
			n, err = q.qp.Post(c.wrBuf[:chunk])
			// Publishing posted after the slots are written lets Poll
			// read them (the sequence number reaches Poll through the NIC).
			q.posted.Store(seq + uint64(n))
		}
		total += n
		if err != nil {
			return total, fmt.Errorf("%v: %w", q, err)
		}
		if bad != nil {
			return total, bad
		}
	}
	return total, nil
}

func checkWR(w *rdma.WorkRequest, localLen, remoteLen uint64) error {
	n := uint64(w.Length)
	if w.LocalOffset > localLen || n > localLen-w.LocalOffset {
		return fmt.Errorf("rdma/verbs: local [%d,+%d) in a %d-byte region: %w", w.LocalOffset, n, localLen, rdma.ErrOutOfBounds)
	}
	if w.RemoteOffset > remoteLen || n > remoteLen-w.RemoteOffset {
		return fmt.Errorf("rdma/verbs: remote [%d,+%d) in a %d-byte region: %w", w.RemoteOffset, n, remoteLen, rdma.ErrOutOfBounds)
	}
	switch w.Op {
	case rdma.OpWrite, rdma.OpRead:
	case rdma.OpCompareSwap:
		if n != 8 || w.LocalOffset%8 != 0 || w.RemoteOffset%8 != 0 {
			return fmt.Errorf("rdma/verbs: compare-swap needs length 8 and aligned offsets, got %d at %d/%d: %w", n, w.LocalOffset, w.RemoteOffset, rdma.ErrLocal)
		}
	default:
		return fmt.Errorf("rdma/verbs: unknown op %v: %w", w.Op, rdma.ErrLocal)
	}
	return nil
}

// SetRemoteAccess changes the queue pair's remote access flags in place
// (IBV_QP_ACCESS_FLAGS on RTS). On a connection in ERROR it fails with
// rdma.ErrConnError: Reset instead. Before the first handshake it sets what
// the first queue pair starts with.
func (c *Conn) SetRemoteAccess(a rdma.Access) error {
	if err := c.f.checkAccess(a); err != nil {
		return fmt.Errorf("%v: %w", c, err)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return rdma.ErrClosed
	}
	q := c.cur
	if q == nil {
		c.access.Store(uint32(a))
		return nil
	}
	if err := q.qp.SetAccess(toVerbsAccess(a)); err != nil {
		if s, qerr := q.qp.State(); qerr == nil && (s == ibv.QPError || s == ibv.QPSQE) {
			return fmt.Errorf("%v: set access: %w (%w)", q, rdma.ErrConnError, err)
		}
		return fmt.Errorf("%v: set access: %w", q, err)
	}
	q.access = a
	q.params.Access = toVerbsAccess(a)
	c.access.Store(uint32(a))
	return nil
}

// Reset cycles the queue pair in service RESET -> INIT -> RTR -> RTS with
// the stored peer parameters and access a. Completions already queued are
// kept; signaled requests still outstanding after that complete as flushed
// (synthesized: a reset discards them without completions); unsignaled ones
// are dropped, their effect at the target unknown.
func (c *Conn) Reset(a rdma.Access) error {
	if err := c.f.checkAccess(a); err != nil {
		return fmt.Errorf("%v: %w", c, err)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return rdma.ErrClosed
	}
	q := c.cur
	if q == nil {
		return fmt.Errorf("%v: reset before a handshake: %w", c, rdma.ErrConnError)
	}
	f := c.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parkCQ()
	p := q.params
	p.Access = toVerbsAccess(a)
	if err := q.qp.Connect(&p); err != nil {
		return fmt.Errorf("%v: reset: %w", q, err)
	}
	q.params, q.access = p, a
	c.access.Store(uint32(a))
	q.flushOwed()
	return nil
}

// State queries the queue pair in service: RTS is ready, ERROR (or SQE) is
// error, anything else (or closed, or none yet) is down.
func (c *Conn) State() rdma.ConnState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() || c.cur == nil {
		return rdma.ConnDown
	}
	s, err := c.cur.qp.State()
	if err != nil {
		return rdma.ConnDown
	}
	switch s {
	case ibv.QPRTS:
		return rdma.ConnReady
	case ibv.QPError, ibv.QPSQE:
		return rdma.ConnError
	}
	return rdma.ConnDown
}

func (q *qpair) destroy() error { return q.qp.Close() }
