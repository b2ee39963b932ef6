package inproc

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rdmaconsensus/mu/rdma"
)

// pair is one connection: both ends share a lock, so requests in either
// direction execute one at a time and in posting order.
type pair struct {
	mu   sync.Mutex
	ends [2]*end
}

// end is one node's queue pair of a connection.
type end struct {
	pair  *pair
	side  int
	node  *Fabric
	peer  *Fabric
	plane rdma.Plane
	depth int

	// Guarded by pair.mu.
	state  rdma.ConnState
	access rdma.Access
	// held are requests the peer has not answered (dead, or its end not
	// ready), in posting order; they go through if the peer's end is reset
	// in time, else the first fails with retry exceeded.
	held       []rdma.WorkRequest
	heldSince  int64
	gen        uint64 // bumped when held empties, to disarm its timer
	expireFunc func() // reused timer callback body
	timerGen   atomic.Uint64
	timer      *time.Timer
}

var _ rdma.Conn = (*end)(nil)

func newEnd(p *pair, side int, n, peer *Fabric, plane rdma.Plane, a rdma.Access, depth int) *end {
	e := &end{pair: p, side: side, node: n, peer: peer, plane: plane, depth: depth,
		state: rdma.ConnReady, access: a, held: make([]rdma.WorkRequest, 0, depth)}
	return e
}

func (e *end) String() string {
	return fmt.Sprintf("inproc conn %d->%d %v", e.node.id, e.peer.id, e.plane)
}

func (e *end) other() *end        { return e.pair.ends[1-e.side] }
func (e *end) Peer() rdma.NodeID  { return e.peer.id }
func (e *end) Plane() rdma.Plane  { return e.plane }
func (e *end) closedLocked() bool { return e.state == rdma.ConnDown || e.node.dead.Load() }
func (e *end) completion(wr *rdma.WorkRequest, st rdma.Status) rdma.Completion {
	return rdma.Completion{ID: wr.ID, Op: wr.Op, Status: st, Peer: e.peer.id, Plane: e.plane}
}

// State is the end's state.
func (e *end) State() rdma.ConnState {
	e.pair.mu.Lock()
	defer e.pair.mu.Unlock()
	return e.state
}

// RemoteAccess is what the peer may do through this end.
func (e *end) RemoteAccess() rdma.Access {
	e.pair.mu.Lock()
	defer e.pair.mu.Unlock()
	return e.access
}

// Post executes each request at the target before returning (or holds it if
// the peer does not answer).
func (e *end) Post(wrs []rdma.WorkRequest) (int, error) {
	e.pair.mu.Lock()
	defer e.pair.mu.Unlock()
	if e.closedLocked() {
		return 0, fmt.Errorf("%v: post: %w", e, rdma.ErrClosed)
	}
	for i := range wrs {
		wr := &wrs[i]
		if err := e.checkLocal(wr); err != nil {
			return i, err
		}
		switch {
		case e.state == rdma.ConnError:
			e.node.push(e.completion(wr, rdma.StatusFlushed))
		case len(e.held) > 0:
			if len(e.held) == e.depth {
				return i, fmt.Errorf("%v: %d held: %w", e, e.depth, rdma.ErrQueueFull)
			}
			e.held = append(e.held, *wr)
		default:
			e.exec(wr)
		}
	}
	return len(wrs), nil
}

func (e *end) checkLocal(wr *rdma.WorkRequest) error {
	size := uint64(len(e.node.region))
	if wr.LocalOffset > size || uint64(wr.Length) > size-wr.LocalOffset {
		return fmt.Errorf("%v: local [%d,+%d) in a %d-byte region: %w", e, wr.LocalOffset, wr.Length, size, rdma.ErrOutOfBounds)
	}
	switch wr.Op {
	case rdma.OpWrite, rdma.OpRead:
	case rdma.OpCompareSwap:
		if wr.Length != 8 || wr.LocalOffset%8 != 0 {
			return fmt.Errorf("%v: compare-swap needs length 8 and an aligned local offset: %w", e, rdma.ErrLocal)
		}
	default:
		return fmt.Errorf("%v: unknown op %v: %w", e, wr.Op, rdma.ErrLocal)
	}
	return nil
}

// exec runs wr at the target, with pair.mu held and e ready.
func (e *end) exec(wr *rdma.WorkRequest) {
	t := e.other()
	if e.peer.dead.Load() || t.state != rdma.ConnReady {
		e.hold(wr)
		return
	}
	st := e.apply(wr, t)
	if st != rdma.StatusSuccess {
		// The responder refuses and its queue pair goes to ERROR; the
		// requester's follows when the refusal arrives (rxe).
		t.toError()
		e.node.push(e.completion(wr, st))
		e.toError()
		return
	}
	if !wr.Unsignaled {
		e.node.push(e.completion(wr, rdma.StatusSuccess))
	}
}

func accessFor(o rdma.Op) rdma.Access {
	switch o {
	case rdma.OpWrite:
		return rdma.AccessRemoteWrite
	case rdma.OpRead:
		return rdma.AccessRemoteRead
	}
	return rdma.AccessRemoteAtomic
}

var nativeBigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

func (e *end) apply(wr *rdma.WorkRequest, t *end) rdma.Status {
	if t.access&accessFor(wr.Op) == 0 {
		return rdma.StatusRemoteInvalidRequest
	}
	dst := e.peer.region
	size := uint64(len(dst))
	if wr.RemoteOffset > size || uint64(wr.Length) > size-wr.RemoteOffset {
		return rdma.StatusRemoteAccessError
	}
	local := e.node.region[wr.LocalOffset : wr.LocalOffset+uint64(wr.Length)]
	remote := dst[wr.RemoteOffset : wr.RemoteOffset+uint64(wr.Length)]
	switch wr.Op {
	case rdma.OpWrite:
		copy(remote, local)
		e.peer.signal()
	case rdma.OpRead:
		copy(local, remote)
	case rdma.OpCompareSwap:
		if wr.RemoteOffset%8 != 0 {
			return rdma.StatusRemoteInvalidRequest
		}
		// Other connections may swap the same word concurrently: use the
		// CPU's atomic on the (8-aligned, mmap'd) word.
		cmp, swp := wr.Compare, wr.Swap
		if nativeBigEndian {
			cmp, swp = bits.ReverseBytes64(cmp), bits.ReverseBytes64(swp)
		}
		word := (*uint64)(unsafe.Pointer(&remote[0]))
		var old uint64
		for {
			old = atomic.LoadUint64(word)
			if old != cmp || atomic.CompareAndSwapUint64(word, old, swp) {
				break
			}
		}
		*(*uint64)(unsafe.Pointer(&local[0])) = old
		e.peer.signal()
	}
	return rdma.StatusSuccess
}

// hold queues wr behind an unanswered peer and arms the transport timeout.
func (e *end) hold(wr *rdma.WorkRequest) {
	if len(e.held) == 0 {
		e.heldSince = e.node.Now()
		e.arm()
	}
	e.held = append(e.held, *wr)
}

func (e *end) arm() {
	e.timerGen.Store(e.gen)
	if e.expireFunc == nil {
		e.expireFunc = e.expire
	}
	d := time.Duration(e.node.net.cfg.TransportTimeoutNs)
	if e.timer == nil {
		e.timer = time.AfterFunc(d, e.expireFunc)
	} else {
		e.timer.Reset(d)
	}
}

// expire fails the oldest held request with retry exceeded once the
// transport timeout has run out, and flushes the rest.
func (e *end) expire() {
	e.pair.mu.Lock()
	defer e.pair.mu.Unlock()
	if len(e.held) == 0 || e.gen != e.timerGen.Load() {
		return
	}
	if left := e.heldSince + e.node.net.cfg.TransportTimeoutNs - e.node.Now(); left > 0 {
		e.timer.Reset(time.Duration(left)) // a timer may fire early; never fail early
		return
	}
	e.node.push(e.completion(&e.held[0], rdma.StatusRetryExceeded))
	e.held = e.held[1:]
	e.toError()
}

// toError moves the end to ERROR and flushes what it holds.
func (e *end) toError() {
	if e.state != rdma.ConnReady {
		return
	}
	e.state = rdma.ConnError
	for i := range e.held {
		e.node.push(e.completion(&e.held[i], rdma.StatusFlushed))
	}
	e.dropHeld()
}

// dropHeld forgets held requests without completions.
func (e *end) dropHeld() {
	e.held = e.held[:0]
	e.gen++
}

// SetRemoteAccess changes what the peer may do through this connection,
// effective when it returns.
func (e *end) SetRemoteAccess(a rdma.Access) error {
	e.pair.mu.Lock()
	defer e.pair.mu.Unlock()
	if e.closedLocked() {
		return fmt.Errorf("%v: set access: %w", e, rdma.ErrClosed)
	}
	if e.state == rdma.ConnError {
		return fmt.Errorf("%v: set access: %w", e, rdma.ErrConnError)
	}
	e.access = a
	return nil
}

// Reset cycles the end back to ready with access a; what it held completes
// with flushed. Requests the peer's end holds for this end go through now.
func (e *end) Reset(a rdma.Access) error {
	e.pair.mu.Lock()
	defer e.pair.mu.Unlock()
	if e.closedLocked() {
		return fmt.Errorf("%v: reset: %w", e, rdma.ErrClosed)
	}
	for i := range e.held {
		e.node.push(e.completion(&e.held[i], rdma.StatusFlushed))
	}
	e.dropHeld()
	e.state = rdma.ConnReady
	e.access = a
	if o := e.other(); len(o.held) > 0 && o.state == rdma.ConnReady && !o.node.dead.Load() {
		held := append([]rdma.WorkRequest(nil), o.held...)
		o.dropHeld()
		for i := range held {
			if o.state == rdma.ConnError {
				o.node.push(o.completion(&held[i], rdma.StatusFlushed))
			} else if len(o.held) > 0 {
				o.held = append(o.held, held[i])
			} else {
				o.exec(&held[i])
			}
		}
	}
	return nil
}
