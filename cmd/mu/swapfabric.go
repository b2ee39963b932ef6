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
type swapFabric struct {
	*verbs.Fabric
	conns map[rdma.NodeID]*[rdma.NumPlanes]swapConn
}

func newSwapFabric(f *verbs.Fabric, peers []rdma.NodeID) *swapFabric {
	s := &swapFabric{Fabric: f, conns: map[rdma.NodeID]*[rdma.NumPlanes]swapConn{}}
	for _, p := range peers {
		var cs [rdma.NumPlanes]swapConn
		for pl := range rdma.NumPlanes {
			cs[pl] = swapConn{f: f, peer: p, plane: pl}
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

// lockPeer excludes every operation on peer's connections.
func (s *swapFabric) lockPeer(peer rdma.NodeID) func() {
	cs, ok := s.conns[peer]
	if !ok {
		return func() {}
	}
	for i := range cs {
		cs[i].mu.Lock()
	}
	return func() {
		for i := range cs {
			cs[i].mu.Unlock()
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
	return q.Post(wrs)
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
