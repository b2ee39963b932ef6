// Package conformance is one set of scenarios that every rdma.Fabric backend
// must pass: the simulator, the in-process fabric and verbs (rxe). Each
// backend's tests call Run with a small adapter.
//
// The scenarios pin down the semantics mu's protocol relies on: visibility
// before completion and per-connection ordering; a write through a revoked
// connection failing with remote invalid request and erroring both ends
// until both are reset (one is not enough); flushed completions on an
// errored connection; a write grant that belongs to one connection (a
// connection without it is refused and only it breaks; a revoked grant, or
// a read-only repair, writes nothing); retry exceeded from a dead peer only after the
// transport timeout; atomic compare-and-swap (64-bit little-endian words at
// both ends); concurrent writers to disjoint areas; batched posts; and a
// re-handshake that keeps the connections the protocol holds, completes
// every request exactly once and revives connections in error.
package conformance

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

// Options describes the cluster a scenario needs.
type Options struct {
	// Nodes is the number of nodes; their IDs are 1..Nodes.
	Nodes int
	// RegionBytes is the size of each node's region (a multiple of 4096).
	RegionBytes int
	// TransportTimeoutNs is the wanted transport timeout: how long a
	// request to a dead peer is retried before it completes with retry
	// exceeded. Backends whose timeout is coarse pick the closest value
	// they can and report it through Cluster.RetryExceededAfterNs.
	TransportTimeoutNs int64
}

// Backend builds clusters for the scenarios.
type Backend interface {
	// Name identifies the backend in test names and messages.
	Name() string
	// Start builds a fresh cluster for one scenario: Options.Nodes nodes
	// with IDs 1..Nodes, each with a zeroed region of RegionBytes, every
	// ordered pair connected on every plane, every connection end Ready and
	// granting its peer rdma.AccessAll. Start registers its own teardown
	// with t.Cleanup (close every fabric, free every region). It calls
	// t.Skip when the environment legitimately lacks what the backend needs
	// (e.g. no RDMA device) and t.Fatal when building fails.
	Start(t testing.TB, o Options) Cluster
}

// Cluster is one built set of connected nodes.
type Cluster interface {
	// Fabric returns node id's fabric, for id in 1..Nodes. Scenarios call
	// its methods (and its connections') only from the test goroutine.
	Fabric(id rdma.NodeID) rdma.Fabric
	// Kill makes node id dead for good, as a crashed host: its NIC stops
	// answering, so requests other nodes post to it get no error at once
	// and complete with rdma.StatusRetryExceeded after the transport
	// timeout. The scenario no longer uses the killed node's Fabric. A
	// backend that cannot kill returns an error wrapping
	// rdma.ErrNotSupported and the scenario is skipped.
	Kill(id rdma.NodeID) error
	// WaitUntil returns true as soon as cond() is true, or false once
	// limitNs nanoseconds of the fabrics' clock (Fabric.Now) have passed
	// without it. Real-time backends poll cond on the calling goroutine
	// (they may yield between calls but must not sleep in coarse steps that
	// would hide ordering); the simulator advances virtual time, running its
	// events and checking cond after each one. cond is only called on the
	// calling goroutine and may call Poll.
	WaitUntil(cond func() bool, limitNs int64) bool
	// RetryExceededAfterNs is the shortest delay, from posting a request
	// to a killed peer, after which the backend may complete it with retry
	// exceeded; a completion observed sooner fails the scenario.
	RetryExceededAfterNs() int64
}

// Reconnector is a Cluster that can redo the handshake between two nodes,
// as a bootstrap does when a peer restarts or redials: new queue pairs
// replace the old on every plane. Connections keep their identity
// (Fabric.Conn returns the same values), both ends are Ready and grant
// rdma.AccessAll afterwards, and every signaled request posted before
// completes exactly once: with its real status if it finished before the
// swap, else rdma.StatusFlushed. Scenarios needing it skip on backends
// without it.
type Reconnector interface {
	Reconnect(a, b rdma.NodeID) error
}

// T is the part of testing.TB the scenarios use; *testing.T satisfies it.
// Fatal, Fatalf and Skipf must not return (testing.T calls
// runtime.Goexit).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Scenario is one named conformance check.
type Scenario struct {
	Name string
	Opts Options
	Run  func(t T, c Cluster)
}

// DefaultTransportTimeoutNs is the timeout scenarios ask for: long enough to
// be unmistakable, short enough for a quick test run.
const DefaultTransportTimeoutNs = 100_000_000

// Scenarios lists every scenario, in the order Run runs them.
func Scenarios() []Scenario {
	o := Options{Nodes: 3, RegionBytes: 1 << 16, TransportTimeoutNs: DefaultTransportTimeoutNs}
	return []Scenario{
		{"VisibilityAndOrdering", o, visibilityAndOrdering},
		{"ReadSeesRemoteData", o, readSeesRemoteData},
		{"RevokeResetBothEnds", o, revokeResetBothEnds},
		{"ResetOneEndNotEnough", o, resetOneEndNotEnough},
		{"FlushedOnErroredConn", o, flushedOnErroredConn},
		{"DeadPeerRetryExceededAfterTimeout", o, deadPeerRetryExceeded},
		{"CompareSwap", o, compareSwap},
		{"ConcurrentDisjointWriters", o, concurrentDisjointWriters},
		{"Batch32", o, batch32},
		{"BackgroundPlaneUnaffectedByRevoke", o, backgroundUnaffected},
		{"GrantIsPerConnection", o, grantIsPerConnection},
		{"ReconnectKeepsConnsAndCompletesOnce", o, reconnectCompletesOnce},
		{"ReconnectRevivesErroredConn", o, reconnectRevives},
	}
}

// Run runs every scenario against b, each as a subtest on a fresh cluster.
func Run(t *testing.T, b Backend) {
	for _, s := range Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			c := b.Start(t, s.Opts)
			s.Run(t, c)
		})
	}
}
