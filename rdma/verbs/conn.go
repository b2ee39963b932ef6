package verbs

import (
	"fmt"
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

// Conn is one RC queue pair to a peer on a plane. It implements rdma.Conn.
type Conn struct {
	f      *Fabric
	peer   rdma.NodeID
	plane  rdma.Plane
	qp     *ibv.QP
	qpn    uint32
	local  rdma.Endpoint
	remote rdma.Endpoint
	params ibv.ConnParams

	connected atomic.Bool
	closed    atomic.Bool
	access    atomic.Uint32 // rdma.Access last set

	wrBuf []ibv.SendWR // Post's translation buffer
	ring  []slot       // indexed by sequence & mask
	mask  uint64
	// posted is the next sequence number; done is one past the newest
	// completion Poll has seen. posted-done is what the send queue holds.
	posted atomic.Uint64
	done   atomic.Uint64
	// floor: completions with a smaller sequence predate the last Reset.
	// Guarded by Fabric.mu.
	floor uint64
}

var _ rdma.Conn = (*Conn)(nil)

func (c *Conn) Peer() rdma.NodeID         { return c.peer }
func (c *Conn) Plane() rdma.Plane         { return c.plane }
func (c *Conn) QPN() uint32               { return c.qpn }
func (c *Conn) RemoteAccess() rdma.Access { return rdma.Access(c.access.Load()) }

// Local is the endpoint sent to the peer; Remote the one received.
func (c *Conn) Local() rdma.Endpoint  { return c.local }
func (c *Conn) Remote() rdma.Endpoint { return c.remote }

func (c *Conn) String() string {
	return fmt.Sprintf("verbs conn %d->%d %v (qpn %#x)", c.f.cfg.Self, c.peer, c.plane, c.qpn)
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

func (c *Conn) connect(ep rdma.Endpoint) error {
	f := c.f
	c.remote = ep
	c.params = ibv.ConnParams{
		DGID: ibv.GID(ep.GID), DestQPN: ep.QPN, RQPSN: ep.PSN, SQPSN: c.local.PSN,
		Access: toVerbsAccess(c.RemoteAccess()),
		Port:   f.cfg.Port, SGIDIndex: uint8(f.gidIndex), HopLimit: 64, PathMTU: f.pathMTU,
		Timeout: f.cfg.TimeoutExp, RetryCount: f.cfg.RetryCount, RNRRetry: f.cfg.RNRRetry,
		MinRNRTimer: 12, MaxRdAtomic: f.rdAtomic, MaxDestRdAtomic: f.rdAtomic,
	}
	if err := c.qp.Connect(&c.params); err != nil {
		return fmt.Errorf("%v: connect: %w", c, err)
	}
	c.connected.Store(true)
	return nil
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
	if c.closed.Load() {
		return 0, errClosed
	}
	if !c.connected.Load() {
		return 0, errNotConn
	}
	f := c.f
	localLen, remoteLen := f.mr.Len(), c.remote.Length
	lkey, rkey := f.mr.LKey(), c.remote.RKey
	localBase, remoteBase := f.mr.Addr(), c.remote.Addr
	total := 0
	for total < len(wrs) {
		seq := c.posted.Load()
		free := int(uint64(len(c.ring)) - (seq - c.done.Load()))
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
			c.ring[(seq+uint64(i))&c.mask] = slot{id: w.ID, op: w.Op, signaled: !w.Unsignaled}
		}
		n := 0
		var err error
		if chunk > 0 {
			n, err = c.qp.Post(c.wrBuf[:chunk])
			// Publishing posted after the slots are written lets Poll
			// read them (the sequence number reaches Poll through the NIC).
			c.posted.Store(seq + uint64(n))
		}
		total += n
		if err != nil {
			return total, fmt.Errorf("%v: %w", c, err)
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
// rdma.ErrConnError: Reset instead.
func (c *Conn) SetRemoteAccess(a rdma.Access) error {
	if c.closed.Load() {
		return rdma.ErrClosed
	}
	if a&^rdma.AccessAll != 0 {
		return fmt.Errorf("%v: access %#x has unknown bits: %w", c, uint8(a), ErrConfig)
	}
	if !c.connected.Load() {
		// Not connected yet: the flags apply at Connect.
		c.access.Store(uint32(a))
		return nil
	}
	if err := c.qp.SetAccess(toVerbsAccess(a)); err != nil {
		if s, qerr := c.qp.State(); qerr == nil && (s == ibv.QPError || s == ibv.QPSQE) {
			return fmt.Errorf("%v: set access: %w (%w)", c, rdma.ErrConnError, err)
		}
		return fmt.Errorf("%v: set access: %w", c, err)
	}
	c.access.Store(uint32(a))
	c.params.Access = toVerbsAccess(a)
	return nil
}

// Reset cycles the queue pair RESET -> INIT -> RTR -> RTS with the stored
// peer parameters and access a. Completions already queued are kept; signaled
// requests still outstanding after that complete as flushed (synthesized: a
// reset discards them without completions); unsignaled ones are dropped,
// their effect at the target unknown.
func (c *Conn) Reset(a rdma.Access) error {
	if c.closed.Load() {
		return rdma.ErrClosed
	}
	if !c.connected.Load() {
		return fmt.Errorf("%v: reset before Connect: %w", c, rdma.ErrConnError)
	}
	if a&^rdma.AccessAll != 0 {
		return fmt.Errorf("%v: access %#x has unknown bits: %w", c, uint8(a), ErrConfig)
	}
	f := c.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parkCQ()
	p := c.params
	p.Access = toVerbsAccess(a)
	if err := c.qp.Connect(&p); err != nil {
		return fmt.Errorf("%v: reset: %w", c, err)
	}
	c.params = p
	c.access.Store(uint32(a))
	posted := c.posted.Load()
	for seq := c.done.Load(); seq < posted; seq++ {
		s := &c.ring[seq&c.mask]
		if s.signaled && len(f.pending) < cap(f.pending) {
			f.pending = append(f.pending, rdma.Completion{ID: s.id, Op: s.op, Status: rdma.StatusFlushed, Peer: c.peer, Plane: c.plane})
		}
	}
	c.floor = posted
	c.done.Store(posted)
	return nil
}

// State queries the queue pair: RTS is ready, ERROR (or SQE) is error,
// anything else (or closed, or not yet connected) is down.
func (c *Conn) State() rdma.ConnState {
	if c.closed.Load() || !c.connected.Load() {
		return rdma.ConnDown
	}
	s, err := c.qp.State()
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

func (c *Conn) destroy() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.qp.Close()
}
