package sim

import (
	"encoding/binary"
	"fmt"

	"github.com/rdmaconsensus/mu/rdma"
)

// op is one posted work request in a connection end's ring.
type op struct {
	wr       rdma.WorkRequest
	departNs int64 // when the initiator's NIC first sent it
	landAt   int64 // planned arrival at the target
	complAt  int64 // planned completion at the initiator, once resolved
	// stallSinceNs is when the first unanswered attempt happened; the
	// request fails with retry exceeded TransportTimeoutNs later. -1: none.
	stallSinceNs int64
	landed       uint32 // bytes of a write already in the target's memory
	resolved     bool   // landed at the target, or failed
	ackSure      bool   // the completion needs no further network leg
	status       rdma.Status
}

// connEnd is one node's queue pair of a connection. The ring holds posted
// requests: [head, land) are resolved and wait for their completion in
// order, [land, tail) wait to land in order.
type connEnd struct {
	w       *World
	node    *Node // owner
	peer    *Node
	peerEnd *connEnd
	plane   rdma.Plane
	state   rdma.ConnState
	access  rdma.Access
	gen     uint32 // bumped whenever pending events must be dropped

	ops              []op
	head, land, tail uint64
	landPending      bool
	complPending     bool
	// blocked: an earlier request failed, so nothing after it may land; the
	// failure's completion moves the end to ERROR and flushes the rest.
	blocked     bool
	lastLandNs  int64
	lastComplNs int64

	accessChanges uint64
	resets        uint64
	posted        uint64
}

var _ rdma.Conn = (*connEnd)(nil)

func (w *World) newEnd(n, peer *Node, plane rdma.Plane, a rdma.Access) *connEnd {
	return &connEnd{w: w, node: n, peer: peer, plane: plane, state: rdma.ConnReady, access: a, ops: make([]op, w.cfg.QueueDepth)}
}

func (e *connEnd) String() string {
	return fmt.Sprintf("sim conn %d->%d %v", e.node.id, e.peer.id, e.plane)
}

func (e *connEnd) Peer() rdma.NodeID         { return e.peer.id }
func (e *connEnd) Plane() rdma.Plane         { return e.plane }
func (e *connEnd) RemoteAccess() rdma.Access { return e.access }
func (e *connEnd) State() rdma.ConnState     { return e.state }
func (e *connEnd) at(i uint64) *op           { return &e.ops[i%uint64(len(e.ops))] }
func (e *connEnd) outstanding() int          { return int(e.tail - e.head) }
func (e *connEnd) usable() bool              { return !e.node.crashed && !e.node.closed && e.state != rdma.ConnDown }
func accessFor(o rdma.Op) rdma.Access {
	switch o {
	case rdma.OpWrite:
		return rdma.AccessRemoteWrite
	case rdma.OpRead:
		return rdma.AccessRemoteRead
	}
	return rdma.AccessRemoteAtomic
}

// Post queues work requests. On a connection in ERROR each request completes
// at once with StatusFlushed, as verbs does.
func (e *connEnd) Post(wrs []rdma.WorkRequest) (int, error) {
	if !e.usable() {
		return 0, fmt.Errorf("%v: post: %w", e, rdma.ErrClosed)
	}
	n, w := e.node, e.w
	for i := range wrs {
		wr := &wrs[i]
		if err := e.checkLocal(wr); err != nil {
			return i, err
		}
		if e.state == rdma.ConnError {
			n.pushCompletion(rdma.Completion{ID: wr.ID, Op: wr.Op, Status: rdma.StatusFlushed, Peer: e.peer.id, Plane: e.plane})
			if w.tracing {
				w.traceOp("flush", e, wr, rdma.StatusFlushed)
			}
			continue
		}
		if e.outstanding() == len(e.ops) {
			return i, fmt.Errorf("%v: %d outstanding: %w", e, len(e.ops), rdma.ErrQueueFull)
		}
		now := n.Now()
		o := e.at(e.tail)
		*o = op{wr: *wr, departNs: now, stallSinceNs: -1}
		lat, payload := &w.cfg.ReadRequest, uint32(0)
		if wr.Op == rdma.OpWrite {
			lat, payload = &w.cfg.WriteRequest, wr.Length
		}
		o.landAt = w.legNs(lat, n, e.peer, now, payload)
		if payload > uint32(w.cfg.MTUBytes) {
			// legNs is the arrival of the last byte; the first packet
			// lands earlier by the serialisation of the rest.
			o.landAt -= w.serialNs(payload - uint32(w.cfg.MTUBytes))
		}
		o.landAt = max(o.landAt, now, e.lastLandNs)
		e.lastLandNs = o.landAt
		e.tail++
		e.posted++
		if w.tracing {
			w.traceOp("post", e, wr, 0)
		}
		if !e.landPending && !e.blocked && e.land == e.tail-1 {
			e.scheduleLand(o.landAt)
		}
	}
	return len(wrs), nil
}

func (e *connEnd) checkLocal(wr *rdma.WorkRequest) error {
	size := uint64(len(e.node.region))
	if wr.LocalOffset > size || uint64(wr.Length) > size-wr.LocalOffset {
		return fmt.Errorf("%v: local [%d,+%d) in a %d-byte region: %w", e, wr.LocalOffset, wr.Length, size, rdma.ErrOutOfBounds)
	}
	switch wr.Op {
	case rdma.OpWrite, rdma.OpRead:
	case rdma.OpCompareSwap:
		if wr.Length != 8 || wr.LocalOffset%8 != 0 {
			return fmt.Errorf("%v: compare-swap needs length 8 and an aligned local offset, got %d at %d: %w", e, wr.Length, wr.LocalOffset, rdma.ErrLocal)
		}
	default:
		return fmt.Errorf("%v: unknown op %v: %w", e, wr.Op, rdma.ErrLocal)
	}
	return nil
}

// SetRemoteAccess changes what the peer may do through this connection. The
// flags apply before it returns; the caller's clock is charged SetAccessNs.
func (e *connEnd) SetRemoteAccess(a rdma.Access) error {
	if !e.usable() {
		return fmt.Errorf("%v: set access: %w", e, rdma.ErrClosed)
	}
	if e.state == rdma.ConnError {
		return fmt.Errorf("%v: set access: %w", e, rdma.ErrConnError)
	}
	e.access = a
	e.accessChanges++
	e.node.charge(e.w.cfg.SetAccessNs)
	if e.w.tracing {
		e.w.traceEnd("access", e, uint64(a))
	}
	return nil
}

// Reset cycles this end through RESET to RTS with access a. Outstanding
// requests complete with StatusFlushed first. The new state applies at once;
// the caller's clock is charged ResetNs.
func (e *connEnd) Reset(a rdma.Access) error {
	if !e.usable() {
		return fmt.Errorf("%v: reset: %w", e, rdma.ErrClosed)
	}
	e.flushAll()
	e.state = rdma.ConnReady
	e.access = a
	e.resets++
	e.lastLandNs, e.lastComplNs = 0, 0
	e.node.charge(e.w.cfg.ResetNs)
	if e.w.tracing {
		e.w.traceEnd("reset", e, uint64(a))
	}
	return nil
}

func (e *connEnd) scheduleLand(at int64) {
	e.landPending = true
	e.w.push(event{at: max(at, e.w.now), kind: evLand, end: e, gen: e.gen})
}

func (e *connEnd) scheduleComplete(at int64) {
	e.complPending = true
	e.w.push(event{at: max(at, e.w.now), kind: evComplete, end: e, gen: e.gen})
}

// stall handles an unanswered attempt: retransmit after the interval, or
// report whether the transport timeout has run out.
func (e *connEnd) stall(o *op, land bool) (expired bool) {
	w := e.w
	now := w.now
	if o.stallSinceNs < 0 {
		o.stallSinceNs = now
	}
	deadline := o.stallSinceNs + w.cfg.TransportTimeoutNs
	if now >= deadline {
		return true
	}
	next := min(now+w.cfg.RetransmitIntervalNs, deadline)
	if land {
		e.scheduleLand(next)
	} else {
		e.scheduleComplete(next)
	}
	return false
}

// onLand delivers the request at e.land to the target, in order.
func (e *connEnd) onLand(gen uint32) {
	if gen != e.gen || !e.landPending {
		return
	}
	e.landPending = false
	if e.land == e.tail || e.blocked {
		return
	}
	w := e.w
	o := e.at(e.land)
	t := e.peerEnd
	// A target whose queue pair is not ready, or a lost or cut path,
	// produces no answer: the initiator retransmits until the timeout.
	if !w.pathUp(e.node, e.peer) || t.state != rdma.ConnReady {
		if e.stall(o, true) {
			e.resolve(o, rdma.StatusRetryExceeded, w.now, true)
		}
		return
	}
	o.stallSinceNs = -1
	st, more := e.apply(o, t)
	if more {
		e.scheduleLand(w.now + w.serialNs(min(uint32(w.cfg.MTUBytes), o.wr.Length-o.landed)))
		return
	}
	if st != rdma.StatusSuccess {
		// The responder NAKs and its queue pair goes to ERROR (rxe).
		t.toError()
	}
	lat, payload := &w.cfg.ReadResponse, uint32(0)
	if o.wr.Op == rdma.OpWrite {
		lat = &w.cfg.WriteAck
	} else if o.wr.Op == rdma.OpRead && st == rdma.StatusSuccess {
		payload = o.wr.Length
	}
	e.resolve(o, st, w.legNs(lat, e.peer, e.node, w.now, payload), false)
	if !e.blocked && e.land < e.tail {
		e.scheduleLand(e.at(e.land).landAt)
	}
}

// apply performs o at the target end t and returns the responder's status.
// A write longer than the MTU lands one packet per call, in address order,
// and reports more until its last packet is in: a poller at the target can
// see it half written, as on a real NIC.
func (e *connEnd) apply(o *op, t *connEnd) (st rdma.Status, more bool) {
	w := e.w
	wr := &o.wr
	if o.landed == 0 {
		if t.access&accessFor(wr.Op) == 0 {
			if w.tracing {
				w.traceOp("refuse", e, wr, rdma.StatusRemoteInvalidRequest)
			}
			return rdma.StatusRemoteInvalidRequest, false
		}
		size := uint64(len(e.peer.region))
		if wr.RemoteOffset > size || uint64(wr.Length) > size-wr.RemoteOffset {
			return rdma.StatusRemoteAccessError, false
		}
		if wr.Op == rdma.OpCompareSwap && wr.RemoteOffset%8 != 0 {
			return rdma.StatusRemoteInvalidRequest, false
		}
	}
	local := e.node.region[wr.LocalOffset : wr.LocalOffset+uint64(wr.Length)]
	remote := e.peer.region[wr.RemoteOffset : wr.RemoteOffset+uint64(wr.Length)]
	switch wr.Op {
	case rdma.OpWrite:
		end := min(o.landed+uint32(w.cfg.MTUBytes), wr.Length)
		copy(remote[o.landed:end], local[o.landed:end])
		o.landed = end
		w.wake(e.peer, w.now)
		if end < wr.Length {
			if w.tracing {
				w.traceOp("packet", e, wr, 0)
			}
			return rdma.StatusSuccess, true
		}
	case rdma.OpRead:
		// The data reaches the initiator's memory before its completion.
		copy(local, remote)
	case rdma.OpCompareSwap:
		old := binary.LittleEndian.Uint64(remote)
		if old == wr.Compare {
			binary.LittleEndian.PutUint64(remote, wr.Swap)
		}
		binary.LittleEndian.PutUint64(local, old)
		w.wake(e.peer, w.now)
	}
	if w.tracing {
		w.traceOp("land", e, wr, 0)
	}
	return rdma.StatusSuccess, false
}

// resolve settles the request at e.land with status, to complete at complAt
// (never before an earlier completion on this end).
func (e *connEnd) resolve(o *op, st rdma.Status, complAt int64, local bool) {
	o.resolved = true
	o.status = st
	o.ackSure = local
	o.stallSinceNs = -1
	o.complAt = max(complAt, e.lastComplNs)
	e.lastComplNs = o.complAt
	e.land++
	if st != rdma.StatusSuccess {
		e.blocked = true
	}
	if !e.complPending && e.head == e.land-1 {
		e.scheduleComplete(o.complAt)
	}
}

// onComplete delivers the completion of the request at e.head, in order.
func (e *connEnd) onComplete(gen uint32) {
	if gen != e.gen || !e.complPending {
		return
	}
	e.complPending = false
	if e.head == e.land {
		return
	}
	w := e.w
	o := e.at(e.head)
	if !o.ackSure && !w.pathUp(e.peer, e.node) {
		// The answer was lost: the initiator retransmits and the target
		// answers the duplicate without applying it again.
		if e.stall(o, false) {
			o.status = rdma.StatusRetryExceeded
		} else {
			return
		}
	} else if o.stallSinceNs >= 0 && !o.ackSure {
		// A retransmission must reach a target end that still answers
		// (one in ERROR drops it); then the answer needs its trip back.
		if !w.pathUp(e.node, e.peer) || e.peerEnd.state != rdma.ConnReady {
			if e.stall(o, false) {
				o.status = rdma.StatusRetryExceeded
			} else {
				return
			}
		} else {
			o.ackSure = true
			o.stallSinceNs = -1
			e.scheduleComplete(w.legNs(&w.cfg.WriteAck, e.peer, e.node, w.now, 0))
			return
		}
	}
	e.head++
	if o.status != rdma.StatusSuccess || !o.wr.Unsignaled {
		e.node.pushCompletion(rdma.Completion{ID: o.wr.ID, Op: o.wr.Op, Status: o.status, Peer: e.peer.id, Plane: e.plane})
	}
	if w.tracing {
		w.traceOp("cqe", e, &o.wr, o.status)
	}
	if o.status != rdma.StatusSuccess {
		e.toError()
		return
	}
	if e.head < e.land {
		e.scheduleComplete(e.at(e.head).complAt)
	}
}

// toError moves the end to ERROR, flushing everything outstanding.
func (e *connEnd) toError() {
	if e.state != rdma.ConnReady {
		return
	}
	e.state = rdma.ConnError
	if e.w.tracing {
		e.w.traceEnd("error", e, 0)
	}
	e.flushAll()
}

// flushAll completes every outstanding request with StatusFlushed and drops
// pending events.
func (e *connEnd) flushAll() {
	for ; e.head < e.tail; e.head++ {
		o := e.at(e.head)
		e.node.pushCompletion(rdma.Completion{ID: o.wr.ID, Op: o.wr.Op, Status: rdma.StatusFlushed, Peer: e.peer.id, Plane: e.plane})
		if e.w.tracing {
			e.w.traceOp("flush", e, &o.wr, rdma.StatusFlushed)
		}
	}
	e.drop()
}

// drop forgets everything outstanding without completions (the node's NIC
// is gone).
func (e *connEnd) drop() {
	e.head, e.land = e.tail, e.tail
	e.gen++
	e.landPending, e.complPending, e.blocked = false, false, false
}

func (e *connEnd) down() {
	e.drop()
	e.state = rdma.ConnDown
}
