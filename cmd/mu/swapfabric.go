package main

import (
	"sync"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/verbs"
)

// swapFabric wraps the verbs fabric so a peer that restarts can be
// connected again while the replica runs. consensus keeps the rdma.Conn it
// was given at construction, and a new handshake with a restarted peer
// replaces (and destroys) that peer's queue pairs; so every Conn handed out
// here is a stable proxy to the peer's current queue pair, and a handshake
// holds the proxy's lock while it swaps them, so no Post runs on a queue
// pair being destroyed.
//
// Destroying a queue pair discards its outstanding requests without
// completions, and the replica, detector and permission manager each wait
// for the completion of what they posted (the detector posts no new read
// while one is outstanding). So every signaled request is tracked until
// its completion, and a swap completes what the old queue pair still owed
// as flushed, as verbs does for a queue pair in ERROR.
type swapFabric struct {
	*verbs.Fabric
	conns map[rdma.NodeID]*[rdma.NumPlanes]swapConn

	flushMu sync.Mutex
	flushed []rdma.Completion // owed by replaced queue pairs
}

func newSwapFabric(f *verbs.Fabric, peers []rdma.NodeID) *swapFabric {
	s := &swapFabric{Fabric: f, conns: map[rdma.NodeID]*[rdma.NumPlanes]swapConn{}}
	for _, p := range peers {
		var cs [rdma.NumPlanes]swapConn
		for pl := range rdma.NumPlanes {
			cs[pl] = swapConn{f: f, peer: p, plane: pl, pending: map[uint64]rdma.Op{}}
		}
		s.conns[p] = &cs
	}
	return s
}

func (s *swapFabric) Conn(peer rdma.NodeID, plane rdma.Plane) rdma.Conn {
	cs, ok := s.conns[peer]
	if !ok || plane >= rdma.NumPlanes {
		return nil
	}
	return &cs[plane]
}

// Poll returns completions owed by replaced queue pairs first, then the
// device's.
func (s *swapFabric) Poll(out []rdma.Completion) int {
	n := 0
	s.flushMu.Lock()
	if len(s.flushed) > 0 {
		n = copy(out, s.flushed)
		s.flushed = s.flushed[n:]
	}
	s.flushMu.Unlock()
	k := s.Fabric.Poll(out[n:])
	for _, c := range out[n : n+k] {
		if cs, ok := s.conns[c.Peer]; ok && c.Plane < rdma.NumPlanes {
			cs[c.Plane].done(c.ID)
		}
	}
	return n + k
}

// lockPeer excludes every operation on peer's connections. Unlocking
// after a swap turns what the old queue pairs owed into flushed
// completions.
func (s *swapFabric) lockPeer(peer rdma.NodeID) func() {
	cs, ok := s.conns[peer]
	if !ok {
		return func() {}
	}
	for i := range cs {
		cs[i].mu.Lock()
	}
	before := [rdma.NumPlanes]rdma.Conn{}
	for i := range cs {
		before[i] = cs[i].cur()
	}
	return func() {
		for i := range cs {
			c := &cs[i]
			if c.cur() != before[i] {
				c.pmu.Lock()
				s.flushMu.Lock()
				for id, op := range c.pending {
					s.flushed = append(s.flushed, rdma.Completion{ID: id, Op: op, Status: rdma.StatusFlushed, Peer: c.peer, Plane: c.plane})
				}
				s.flushMu.Unlock()
				clear(c.pending)
				c.pmu.Unlock()
			}
			c.mu.Unlock()
		}
	}
}

// peering is the verbs fabric's Peering with each step run while peer's
// connections are locked.
func (s *swapFabric) peering() rdma.Peering {
	p := s.Fabric.Peering()
	return rdma.Peering{
		Prepare: func(peer rdma.NodeID) ([]rdma.Endpoint, error) {
			defer s.lockPeer(peer)()
			return p.Prepare(peer)
		},
		Commit: func(peer rdma.NodeID, local, remote []rdma.Endpoint) error {
			defer s.lockPeer(peer)()
			return p.Commit(peer, local, remote)
		},
		Abort: func(peer rdma.NodeID) {
			defer s.lockPeer(peer)()
			p.Abort(peer)
		},
	}
}

// swapConn forwards to the peer's current queue pair.
type swapConn struct {
	mu    sync.RWMutex
	f     *verbs.Fabric
	peer  rdma.NodeID
	plane rdma.Plane

	pmu     sync.Mutex
	pending map[uint64]rdma.Op // signaled requests awaiting their completion
}

func (c *swapConn) done(id uint64) {
	c.pmu.Lock()
	delete(c.pending, id)
	c.pmu.Unlock()
}

func (c *swapConn) Peer() rdma.NodeID { return c.peer }
func (c *swapConn) Plane() rdma.Plane { return c.plane }
func (c *swapConn) cur() rdma.Conn    { return c.f.Conn(c.peer, c.plane) }
func (c *swapConn) State() rdma.ConnState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if q := c.cur(); q != nil {
		return q.State()
	}
	return rdma.ConnDown
}

func (c *swapConn) Post(wrs []rdma.WorkRequest) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	q := c.cur()
	if q == nil {
		return 0, rdma.ErrConnError
	}
	n, err := q.Post(wrs)
	if n > 0 {
		c.pmu.Lock()
		for i := range wrs[:n] {
			if !wrs[i].Unsignaled {
				c.pending[wrs[i].ID] = wrs[i].Op
			}
		}
		c.pmu.Unlock()
	}
	return n, err
}

func (c *swapConn) SetRemoteAccess(a rdma.Access) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	q := c.cur()
	if q == nil {
		return rdma.ErrConnError
	}
	return q.SetRemoteAccess(a)
}

func (c *swapConn) RemoteAccess() rdma.Access {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if q := c.cur(); q != nil {
		return q.RemoteAccess()
	}
	return rdma.AccessNone
}

func (c *swapConn) Reset(a rdma.Access) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	q := c.cur()
	if q == nil {
		return rdma.ErrConnError
	}
	return q.Reset(a)
}
