package sim

import (
	"github.com/rdmaconsensus/mu/rdma"
)

// Node is one simulated replica's fabric: it implements rdma.Fabric. Its
// methods must be called only from the goroutine that runs the World (from
// a Stepper, a scheduled function, or between Run calls).
type Node struct {
	w       *World
	id      rdma.NodeID
	idx     int
	region  []byte
	reg     regionRef
	ends    [maxNodes][rdma.NumPlanes]*connEnd // by peer idx
	cq      []rdma.Completion
	cqHead  int
	stepper Stepper
	stepAt  int64 // pending step time, NoWake if none

	// busyUntilNs is when the node's CPU finishes the verbs calls it made
	// (SetRemoteAccess, Reset); its clock reads at least this.
	busyUntilNs int64

	crashed    bool
	keepMemory bool
	paused     bool
	slow       float64 // latency factor for ops it initiates or serves

	closed bool

	completions uint64
	chargedNs   int64
}

var _ rdma.Fabric = (*Node)(nil)

// Self is the node's id.
func (n *Node) Self() rdma.NodeID { return n.id }

// ID is the node's id.
func (n *Node) ID() rdma.NodeID { return n.id }

// regionRef lets Region return the region without boxing a slice.
type regionRef struct{ b []byte }

func (r *regionRef) Bytes() []byte { return r.b }

// Region is the node's memory. The simulator keeps it on the Go heap: no NIC
// DMAs into it, and the single driver goroutine makes every access ordered.
func (n *Node) Region() rdma.Region { return &n.reg }

// Bytes is the node's region as a slice (for tests and fault injection).
func (n *Node) Bytes() []byte { return n.region }

// Conn returns the connection to peer on plane, or nil.
func (n *Node) Conn(peer rdma.NodeID, plane rdma.Plane) rdma.Conn {
	p := n.w.Node(peer)
	if p == nil || plane >= rdma.NumPlanes {
		return nil
	}
	if e := n.end(p, plane); e != nil {
		return e
	}
	return nil
}

func (n *Node) end(peer *Node, plane rdma.Plane) *connEnd { return n.ends[peer.idx][plane] }

func (n *Node) setEnd(peer *Node, plane rdma.Plane, e *connEnd) { n.ends[peer.idx][plane] = e }

// Poll moves up to len(out) completions into out.
func (n *Node) Poll(out []rdma.Completion) int {
	k := copy(out, n.cq[n.cqHead:])
	n.cqHead += k
	if n.cqHead == len(n.cq) {
		n.cq = n.cq[:0]
		n.cqHead = 0
	}
	return k
}

// Now is the node's clock: virtual time, plus any CPU time its verbs calls
// have used up in the current step.
func (n *Node) Now() int64 { return max(n.w.now, n.busyUntilNs) }

// Close takes the node's connections down. The region stays readable.
func (n *Node) Close() error {
	if n.closed {
		return nil
	}
	n.closed = true
	n.forEachEnd(func(e *connEnd) { e.down() })
	return nil
}

// Crashed reports whether the node is crashed.
func (n *Node) Crashed() bool { return n.crashed }

// Paused reports whether the node's CPU is paused.
func (n *Node) Paused() bool { return n.paused }

// BusyUntilNs is when the CPU time charged by verbs calls runs out.
func (n *Node) BusyUntilNs() int64 { return n.busyUntilNs }

func (n *Node) charge(ns int64) {
	n.busyUntilNs = n.Now() + ns
	n.chargedNs += ns
}

// Stats counts what a node did through its connections.
type Stats struct {
	Posted        uint64 // work requests accepted by Post (flushed ones excluded)
	Completions   uint64 // completions queued for the node
	AccessChanges uint64 // SetRemoteAccess calls that took effect
	Resets        uint64 // Reset calls that took effect
	CPUChargedNs  int64  // CPU time charged for SetRemoteAccess and Reset
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := Stats{Completions: n.completions, CPUChargedNs: n.chargedNs}
	n.forEachEnd(func(e *connEnd) {
		s.Posted += e.posted
		s.AccessChanges += e.accessChanges
		s.Resets += e.resets
	})
	return s
}

func (n *Node) forEachEnd(fn func(e *connEnd)) {
	for i := range n.w.nodes {
		for p := range n.ends[i] {
			if e := n.ends[i][p]; e != nil {
				fn(e)
			}
		}
	}
}

func (n *Node) pushCompletion(c rdma.Completion) {
	if n.crashed {
		return
	}
	n.cq = append(n.cq, c)
	n.completions++
	n.w.wake(n, n.w.now)
}
