// Package inproc is an in-process, real-time rdma.Fabric: every node of a
// replica group lives in one process, regions are mmap'd off the Go heap,
// and one-sided operations execute inside Post. It is for library users'
// tests and for running a whole group in one process; it keeps rxe's
// semantics (see rdma/conformance) with near-zero latency:
//
//   - a request executes at the target during Post, under the connection's
//     lock, so requests on one connection take effect in posting order and
//     a request's data is in place before its completion is queued;
//   - a request the target's end does not allow completes with
//     StatusRemoteInvalidRequest and puts both ends in ConnError until each
//     is Reset; requests posted on an end in ConnError complete with
//     StatusFlushed;
//   - a request to a killed peer, or to a peer whose end is not ready, is
//     held and fails with StatusRetryExceeded after the transport timeout,
//     never sooner (held requests go through if the peer's end is reset in
//     time); the end then goes to ConnError;
//   - compare-and-swap is atomic (64-bit little-endian words).
//
// Nothing here is driven by a virtual clock: Now is the monotonic clock and
// timeouts use real timers.
package inproc

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rdmaconsensus/mu/rdma"
)

// Config sets the in-process fabric's limits.
type Config struct {
	// TransportTimeoutNs is how long a request to an unresponsive peer is
	// held before it completes with retry exceeded.
	TransportTimeoutNs int64
	// QueueDepth bounds the requests held per connection end.
	QueueDepth int
}

// DefaultConfig matches rxe with timeout 14 and retry_cnt 7.
func DefaultConfig() Config {
	return Config{TransportTimeoutNs: 500_000_000, QueueDepth: 256}
}

// ErrInvalidConfig is wrapped by Config.Validate failures.
var ErrInvalidConfig = errors.New("inproc: invalid config")

// Validate names the first wrong field.
func (c Config) Validate() error {
	if c.TransportTimeoutNs <= 0 {
		return fmt.Errorf("%w: TransportTimeoutNs is %d, must be > 0", ErrInvalidConfig, c.TransportTimeoutNs)
	}
	if c.QueueDepth <= 0 {
		return fmt.Errorf("%w: QueueDepth is %d, must be > 0", ErrInvalidConfig, c.QueueDepth)
	}
	return nil
}

// Network is a set of in-process nodes and the connections between them.
type Network struct {
	cfg   Config
	start time.Time // base of the monotonic clock

	mu     sync.Mutex
	nodes  map[rdma.NodeID]*Fabric // only looked up, never iterated for order
	order  []*Fabric
	closed bool
}

// NewNetwork returns an empty network.
func NewNetwork(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Network{cfg: cfg, start: time.Now(), nodes: make(map[rdma.NodeID]*Fabric)}, nil
}

// Now is the network's monotonic clock in nanoseconds.
func (n *Network) Now() int64 { return int64(time.Since(n.start)) }

// AddNode creates a node with a zeroed, mmap'd region of at least
// regionBytes (rounded up to whole pages).
func (n *Network) AddNode(id rdma.NodeID, regionBytes int) (*Fabric, error) {
	if regionBytes <= 0 {
		return nil, fmt.Errorf("inproc: node %d: region of %d bytes: %w", id, regionBytes, rdma.ErrOutOfBounds)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("inproc: add node %d: %w", id, rdma.ErrClosed)
	}
	if _, dup := n.nodes[id]; dup {
		return nil, fmt.Errorf("inproc: node %d already exists", id)
	}
	page := unix.Getpagesize()
	size := (regionBytes + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("inproc: node %d: mmap %d bytes: %w", id, size, err)
	}
	f := &Fabric{net: n, id: id, mem: mem, region: mem[:regionBytes], conns: make(map[connKey]*end)}
	f.reg.b = f.region
	// Unmapped only once nothing can reach the Fabric (see Close): a
	// driver that still holds it never faults.
	runtime.AddCleanup(f, func(m []byte) { _ = unix.Munmap(m) }, mem)
	f.wake = make(chan struct{}, 1)
	n.nodes[id] = f
	n.order = append(n.order, f)
	return f, nil
}

// Node returns the node with id, or nil.
func (n *Network) Node(id rdma.NodeID) *Fabric {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[id]
}

// Connect builds the connection between a and b on plane: a's end lets b do
// accessA to a's region, b's end lets a do accessB. Both ends start ready.
func (n *Network) Connect(a, b rdma.NodeID, plane rdma.Plane, accessA, accessB rdma.Access) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	fa, fb := n.nodes[a], n.nodes[b]
	if fa == nil || fb == nil || a == b || plane >= rdma.NumPlanes {
		return fmt.Errorf("inproc: connect %d-%d on %v: no such pair", a, b, plane)
	}
	fa.mu.Lock()
	_, exists := fa.conns[connKey{b, plane}]
	fa.mu.Unlock()
	if exists {
		return fmt.Errorf("inproc: connect %d-%d on %v: already connected", a, b, plane)
	}
	p := &pair{}
	p.ends[0] = newEnd(p, 0, fa, fb, plane, accessA, n.cfg.QueueDepth)
	p.ends[1] = newEnd(p, 1, fb, fa, plane, accessB, n.cfg.QueueDepth)
	fa.addConn(p.ends[0])
	fb.addConn(p.ends[1])
	return nil
}

// ConnectAll connects every pair of nodes on every plane, each end granting
// initial[plane].
func (n *Network) ConnectAll(initial [rdma.NumPlanes]rdma.Access) error {
	n.mu.Lock()
	nodes := append([]*Fabric(nil), n.order...)
	n.mu.Unlock()
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			for p := rdma.Plane(0); p < rdma.NumPlanes; p++ {
				if err := n.Connect(a.id, b.id, p, initial[p], initial[p]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Kill makes a node dead for good, as a crashed host: its NIC stops
// answering (peers' requests are held and fail with retry exceeded after the
// transport timeout), what it had pending vanishes without completions, and
// its fabric returns no more completions. Its region stays mapped until the
// network is closed.
func (n *Network) Kill(id rdma.NodeID) error {
	f := n.Node(id)
	if f == nil {
		return fmt.Errorf("inproc: kill %d: no such node", id)
	}
	f.dead.Store(true)
	for _, e := range f.endList() {
		e.pair.mu.Lock()
		e.dropHeld()
		e.pair.mu.Unlock()
	}
	f.cqMu.Lock()
	f.cq, f.cqHead = f.cq[:0], 0
	f.cqMu.Unlock()
	return nil
}

// Close closes every node and releases every region's memory (see
// Fabric.Close).
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	nodes := n.order
	n.mu.Unlock()
	var errs []error
	for _, f := range nodes {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

type connKey struct {
	peer  rdma.NodeID
	plane rdma.Plane
}

// Fabric is one node of a Network; it implements rdma.Fabric and is safe
// for concurrent use.
type Fabric struct {
	net    *Network
	id     rdma.NodeID
	mem    []byte // the whole mapping
	region []byte // mem[:asked size]; mapped while the Fabric is reachable
	reg    regionRef

	mu     sync.Mutex
	conns  map[connKey]*end
	ends   []*end
	closed bool
	dead   atomic.Bool

	cqMu   sync.Mutex
	cq     []rdma.Completion
	cqHead int

	wake chan struct{} // one pending signal at most
}

var _ rdma.Fabric = (*Fabric)(nil)

func (f *Fabric) addConn(e *end) {
	f.mu.Lock()
	f.conns[connKey{e.peer.id, e.plane}] = e
	f.ends = append(f.ends, e)
	f.mu.Unlock()
}

func (f *Fabric) endList() []*end {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*end(nil), f.ends...)
}

// Self is the node's id.
func (f *Fabric) Self() rdma.NodeID { return f.id }

// regionRef lets Region return the region without boxing a slice.
type regionRef struct{ b []byte }

func (r *regionRef) Bytes() []byte { return r.b }

// Region is the node's mmap'd memory. Its contents are valid until Close;
// it stays mapped while the Fabric is reachable.
func (f *Fabric) Region() rdma.Region { return &f.reg }

// Conn returns the connection to peer on plane, or nil.
func (f *Fabric) Conn(peer rdma.NodeID, plane rdma.Plane) rdma.Conn {
	f.mu.Lock()
	e := f.conns[connKey{peer, plane}]
	f.mu.Unlock()
	if e == nil {
		return nil
	}
	return e
}

// Poll moves up to len(out) completions into out.
func (f *Fabric) Poll(out []rdma.Completion) int {
	if f.dead.Load() {
		return 0
	}
	f.cqMu.Lock()
	k := copy(out, f.cq[f.cqHead:])
	f.cqHead += k
	if f.cqHead == len(f.cq) {
		f.cq, f.cqHead = f.cq[:0], 0
	}
	f.cqMu.Unlock()
	return k
}

// Now is the network's monotonic clock in nanoseconds.
func (f *Fabric) Now() int64 { return f.net.Now() }

// Close takes the node's connections down (peers' requests to it then fail
// with retry exceeded after the timeout) and releases its region's memory.
// Stop the node's driver first (consensus.Replica.Close). A driver that
// outlives Close still does not fault: the region reads as zeros and stays
// mapped until the Fabric is unreachable, because unmapping memory that
// Go code may still touch crashes the process (not a recoverable panic).
func (f *Fabric) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	ends := append([]*end(nil), f.ends...)
	f.mu.Unlock()
	// Taking each connection's lock waits out any request touching the
	// region; afterwards nothing can reach it.
	for _, e := range ends {
		e.pair.mu.Lock()
		e.dropHeld()
		e.state = rdma.ConnDown
		e.pair.mu.Unlock()
	}
	if err := unix.Madvise(f.mem, unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("inproc: node %d: release region: %w", f.id, err)
	}
	return nil
}

func (f *Fabric) push(c rdma.Completion) {
	if f.dead.Load() {
		return
	}
	f.cqMu.Lock()
	f.cq = append(f.cq, c)
	f.cqMu.Unlock()
	f.signal()
}

// signal wakes the node's driver without blocking or allocating.
func (f *Fabric) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Wake receives a signal after a completion is queued for this node or a
// remote write or compare-and-swap lands in its region (one signal may
// stand for several). A driver waits on it instead of spinning.
func (f *Fabric) Wake() <-chan struct{} { return f.wake }
