// Package verbs is the rdma.Fabric backend on real RDMA devices (and
// Soft-RoCE), built on the libibverbs binding in cgo/verbs.
//
// A node has one registered region (mmap, local write plus remote read,
// write and atomic; the per-connection remote access flags are the
// permission switch), one completion queue shared by all connections, and
// one RC queue pair per peer per plane.
//
// Setting up a peer is two steps, so any transport can carry the endpoints:
// Prepare creates the local queue pairs and returns their rdma.Endpoint
// values to send to the peer; Connect (or Commit) takes the peer's endpoints
// and moves the queue pairs to RTS. Peering adapts the pair to
// rdma.Bootstrapper.
//
// Threading: Post on a Conn from one goroutine at a time; Poll from one
// goroutine at a time; Reset and SetRemoteAccess may run on another
// goroutine, but not concurrently with Post on the same Conn.
package verbs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	ibv "github.com/rdmaconsensus/mu/cgo/verbs"
	"github.com/rdmaconsensus/mu/rdma"
)

var (
	// ErrConfig: a Config field is invalid; the message names it.
	ErrConfig = errors.New("rdma/verbs: invalid config")
	// ErrEndpoint: a peer's endpoint does not fit this fabric.
	ErrEndpoint = errors.New("rdma/verbs: endpoint mismatch")
)

// epoch is the zero of Now, shared by every fabric in the process so their
// clocks compare.
var epoch = time.Now()

// pollBatch bounds the completions one Poll takes from the CQ.
const pollBatch = 64

// Fabric is one node's verbs fabric. It implements rdma.Fabric.
type Fabric struct {
	cfg       Config
	ctx       *ibv.Context
	pd        *ibv.PD
	cq        *ibv.CQ
	mem       *ibv.Memory
	mr        *ibv.MR
	pathMTU   ibv.MTU
	gidIndex  int
	gid       ibv.GID
	rdAtomic  uint8
	maxInline atomic.Uint32 // as granted to the newest queue pair

	// table maps (peer, plane) and QP numbers to connections. It is
	// replaced, never mutated, under mu, so Conn reads it without a lock.
	table atomic.Pointer[connTable]

	// mu serializes Poll against Reset and against table changes, so a
	// reset's synthesized completions and the CQ's never race.
	mu      sync.Mutex
	wcs     []ibv.WC
	pending []rdma.Completion // synthesized by Reset, drained first by Poll
	closed  atomic.Bool
}

type connTable struct {
	conns []*Conn // every live connection
}

func (t *connTable) find(peer rdma.NodeID, plane rdma.Plane) *Conn {
	for _, c := range t.conns {
		if c.peer == peer && c.plane == plane {
			return c
		}
	}
	return nil
}

func (t *connTable) byQPN(qpn uint32) *Conn {
	for _, c := range t.conns {
		if c.qpn == qpn {
			return c
		}
	}
	return nil
}

// New opens the device, registers the region and creates the shared CQ. It
// creates no queue pairs: call Prepare for each peer.
func New(cfg Config) (*Fabric, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Fabric{cfg: cfg, wcs: make([]ibv.WC, pollBatch)}
	f.table.Store(&connTable{})
	ok := false
	defer func() {
		if !ok {
			f.release()
		}
	}()
	var err error
	if f.ctx, err = ibv.Open(cfg.Device); err != nil {
		return nil, err
	}
	pa, err := f.ctx.QueryPort(cfg.Port)
	if err != nil {
		return nil, err
	}
	if pa.State != ibv.PortActive {
		return nil, fmt.Errorf("rdma/verbs: %s port %d is %v, not active: %w", f.ctx.Name(), cfg.Port, pa.State, rdma.ErrNotSupported)
	}
	f.pathMTU = pa.ActiveMTU
	if cfg.GIDIndex < 0 {
		f.gidIndex, f.gid, err = f.ctx.FindIPv4GID(cfg.Port)
	} else {
		f.gidIndex = cfg.GIDIndex
		f.gid, err = f.ctx.QueryGID(cfg.Port, cfg.GIDIndex)
		if err == nil && f.gid.IsZero() {
			err = fmt.Errorf("%w: GIDIndex %d of %s port %d is empty", ErrConfig, cfg.GIDIndex, f.ctx.Name(), cfg.Port)
		}
	}
	if err != nil {
		return nil, err
	}
	attr := f.ctx.Attr()
	f.rdAtomic = cfg.MaxRdAtomic
	if f.rdAtomic == 0 {
		f.rdAtomic = uint8(min(16, attr.MaxQPRdAtom, attr.MaxQPInitRdAtom))
	}
	if f.pd, err = f.ctx.AllocPD(); err != nil {
		return nil, err
	}
	if f.mem, err = ibv.AllocMemory(cfg.RegionBytes); err != nil {
		return nil, err
	}
	access := ibv.AccessLocalWrite | ibv.AccessRemoteRead | ibv.AccessRemoteWrite | ibv.AccessRemoteAtomic
	if f.mr, err = f.pd.RegisterMemory(f.mem, access); err != nil {
		return nil, err
	}
	// Room for every connection's outstanding requests, twice: after a
	// reset, stale completions of the old incarnation may still be queued.
	cqe := max(64, 2*len(cfg.Peers)*int(rdma.NumPlanes)*int(cfg.SendQueueDepth))
	if m := int(attr.MaxCQE); m > 0 && cqe > m {
		cqe = m
	}
	if f.cq, err = f.ctx.CreateCQ(cqe); err != nil {
		return nil, err
	}
	// Reset parks the CQ's contents and its own flushes here.
	f.pending = make([]rdma.Completion, 0, cqe+max(1, len(cfg.Peers))*int(rdma.NumPlanes)*int(cfg.SendQueueDepth))
	ok = true
	return f, nil
}

// release frees whatever New or the connections hold, in dependency order.
func (f *Fabric) release() error {
	var errs []error
	if t := f.table.Load(); t != nil {
		for _, c := range t.conns {
			errs = append(errs, c.destroy())
		}
		f.table.Store(&connTable{})
	}
	if f.cq != nil {
		errs = append(errs, f.cq.Close())
	}
	if f.mr != nil {
		errs = append(errs, f.mr.Close())
	}
	if f.mem != nil {
		errs = append(errs, f.mem.Close())
	}
	if f.pd != nil {
		errs = append(errs, f.pd.Close())
	}
	if f.ctx != nil {
		errs = append(errs, f.ctx.Close())
	}
	return errors.Join(errs...)
}

// Self is this node's id.
func (f *Fabric) Self() rdma.NodeID { return f.cfg.Self }

// Region is the registered region.
func (f *Fabric) Region() rdma.Region { return region{f.mem} }

type region struct{ mem *ibv.Memory }

func (r region) Bytes() []byte { return r.mem.Bytes() }

// Device is the name of the opened device.
func (f *Fabric) Device() string { return f.ctx.Name() }

// MaxInline is the largest write sent inline, as the device granted it (0
// until the first Prepare).
func (f *Fabric) MaxInline() uint32 { return f.maxInline.Load() }

// Now is the process-wide monotonic clock in nanoseconds.
func (f *Fabric) Now() int64 { return int64(time.Since(epoch)) }

// Conn returns the connection to peer on plane, or nil.
func (f *Fabric) Conn(peer rdma.NodeID, plane rdma.Plane) rdma.Conn {
	if c := f.table.Load().find(peer, plane); c != nil {
		return c
	}
	return nil
}

// VerbsConn is Conn with the concrete type, for tests and tools.
func (f *Fabric) VerbsConn(peer rdma.NodeID, plane rdma.Plane) *Conn {
	return f.table.Load().find(peer, plane)
}

func (f *Fabric) isPeer(p rdma.NodeID) bool {
	for _, q := range f.cfg.Peers {
		if q == p {
			return true
		}
	}
	return false
}

// Prepare creates one queue pair per plane for peer, replacing (and
// destroying) any earlier ones, and returns the local endpoints to send to
// the peer, sorted by plane.
func (f *Fabric) Prepare(peer rdma.NodeID) ([]rdma.Endpoint, error) {
	if f.closed.Load() {
		return nil, rdma.ErrClosed
	}
	if !f.isPeer(peer) {
		return nil, fmt.Errorf("%w: node %d is not in Peers", ErrConfig, peer)
	}
	f.Abort(peer)
	conns := make([]*Conn, 0, rdma.NumPlanes)
	eps := make([]rdma.Endpoint, 0, rdma.NumPlanes)
	for p := range rdma.NumPlanes {
		c, err := f.newConn(peer, p)
		if err != nil {
			for _, c := range conns {
				_ = c.destroy()
			}
			return nil, err
		}
		conns = append(conns, c)
		eps = append(eps, c.local)
	}
	f.mu.Lock()
	old := f.table.Load()
	next := &connTable{conns: append(append([]*Conn(nil), old.conns...), conns...)}
	f.table.Store(next)
	f.mu.Unlock()
	return eps, nil
}

// Abort destroys the queue pairs of peer, if any.
func (f *Fabric) Abort(peer rdma.NodeID) {
	f.mu.Lock()
	old := f.table.Load()
	var keep, drop []*Conn
	for _, c := range old.conns {
		if c.peer == peer {
			drop = append(drop, c)
		} else {
			keep = append(keep, c)
		}
	}
	if len(drop) > 0 {
		f.table.Store(&connTable{conns: keep})
	}
	f.mu.Unlock()
	for _, c := range drop {
		_ = c.destroy()
	}
}

// LocalEndpoints returns the endpoints of peer's queue pairs made by the
// last Prepare, sorted by plane.
func (f *Fabric) LocalEndpoints(peer rdma.NodeID) []rdma.Endpoint {
	var eps []rdma.Endpoint
	for p := range rdma.NumPlanes {
		if c := f.table.Load().find(peer, p); c != nil {
			eps = append(eps, c.local)
		}
	}
	return eps
}

// Connect moves peer's queue pairs to RTS towards remote: the peer's
// endpoints, one per plane, in any order.
func (f *Fabric) Connect(peer rdma.NodeID, remote []rdma.Endpoint) error {
	if f.closed.Load() {
		return rdma.ErrClosed
	}
	if len(remote) != int(rdma.NumPlanes) {
		return fmt.Errorf("%w: %d endpoints from node %d, want one per plane (%d)", ErrEndpoint, len(remote), peer, rdma.NumPlanes)
	}
	t := f.table.Load()
	for _, ep := range remote {
		if err := f.checkRemote(peer, ep); err != nil {
			return err
		}
		c := t.find(peer, ep.Plane)
		if c == nil {
			return fmt.Errorf("%w: no local queue pair for node %d plane %v: call Prepare first", ErrEndpoint, peer, ep.Plane)
		}
		if err := c.connect(ep); err != nil {
			return err
		}
	}
	return nil
}

// Commit is Connect after checking that local are the endpoints Prepare
// returned (the bootstrap's view).
func (f *Fabric) Commit(peer rdma.NodeID, local, remote []rdma.Endpoint) error {
	t := f.table.Load()
	for _, ep := range local {
		c := t.find(peer, ep.Plane)
		if c == nil || c.local != ep {
			return fmt.Errorf("%w: local endpoint for node %d plane %v is not the prepared one", ErrEndpoint, peer, ep.Plane)
		}
	}
	return f.Connect(peer, remote)
}

// Peering adapts Prepare, Commit and Abort to rdma.Bootstrapper.
func (f *Fabric) Peering() rdma.Peering {
	return rdma.Peering{Prepare: f.Prepare, Commit: f.Commit, Abort: f.Abort}
}

func (f *Fabric) checkRemote(peer rdma.NodeID, ep rdma.Endpoint) error {
	switch {
	case ep.Version != rdma.ProtocolVersion:
		return fmt.Errorf("%w: endpoint version %d, want %d", ErrEndpoint, ep.Version, rdma.ProtocolVersion)
	case ep.ClusterID != f.cfg.ClusterID:
		return fmt.Errorf("%w: endpoint cluster %#x, want %#x", ErrEndpoint, ep.ClusterID, f.cfg.ClusterID)
	case ep.Node != peer:
		return fmt.Errorf("%w: endpoint of node %d offered as node %d", ErrEndpoint, ep.Node, peer)
	case ep.Plane >= rdma.NumPlanes:
		return fmt.Errorf("%w: endpoint plane %v", ErrEndpoint, ep.Plane)
	case ep.QPN == 0 || ep.QPN >= 1<<24 || ep.PSN >= 1<<24:
		return fmt.Errorf("%w: endpoint QPN %#x PSN %#x exceed 24 bits", ErrEndpoint, ep.QPN, ep.PSN)
	case ep.GID == [16]byte{}:
		return fmt.Errorf("%w: endpoint GID is zero", ErrEndpoint)
	case ep.Length == 0:
		return fmt.Errorf("%w: endpoint region length 0", ErrEndpoint)
	}
	return nil
}

func (f *Fabric) newConn(peer rdma.NodeID, plane rdma.Plane) (*Conn, error) {
	qp, err := f.pd.CreateQP(f.cq, ibv.QPConfig{MaxSendWR: f.cfg.SendQueueDepth, MaxInline: f.cfg.MaxInline})
	if err != nil {
		return nil, err
	}
	f.maxInline.Store(qp.MaxInline())
	depth := f.cfg.SendQueueDepth
	c := &Conn{
		f: f, peer: peer, plane: plane, qp: qp, qpn: qp.Num(),
		wrBuf: make([]ibv.SendWR, depth),
		ring:  make([]slot, depth),
		mask:  uint64(depth - 1),
	}
	c.access.Store(uint32(f.cfg.InitialAccess))
	c.local = rdma.Endpoint{
		Version: rdma.ProtocolVersion, ClusterID: f.cfg.ClusterID, Node: f.cfg.Self, Plane: plane,
		GID: f.gid, QPN: qp.Num(), PSN: rand.Uint32() & (1<<24 - 1),
		Addr: f.mr.Addr(), RKey: f.mr.RKey(), Length: f.mr.Len(),
	}
	return c, nil
}

// Poll moves up to len(out) completions into out, in one crossing into C.
// It never blocks and never allocates.
func (f *Fabric) Poll(out []rdma.Completion) int { return f.PollSpin(out, 0) }

// PollSpin is Poll for a dedicated poller: while the completion queue is
// empty it polls again inside C, up to spins times, before returning 0, so
// a busy-wait costs one crossing rather than one per attempt. It holds the
// fabric's lock meanwhile (Reset waits), so keep spins small: each empty
// poll is well under a microsecond on hardware.
func (f *Fabric) PollSpin(out []rdma.Completion, spins int) int {
	if len(out) == 0 || f.closed.Load() {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	if len(f.pending) > 0 {
		n = copy(out, f.pending)
		rest := copy(f.pending, f.pending[n:])
		f.pending = f.pending[:rest]
		if n == len(out) {
			return n
		}
	}
	want := min(len(out)-n, len(f.wcs))
	if n > 0 {
		spins = 0 // already have something to return
	}
	k, err := f.cq.PollSpin(f.wcs[:want], spins)
	if err != nil {
		return n
	}
	t := f.table.Load()
	for i := range k {
		if f.translate(t, &f.wcs[i], &out[n]) {
			n++
		}
	}
	return n
}

// translate turns a verbs completion into the caller's; false drops it (a
// destroyed pair's, or one from before a reset). Called under mu.
func (f *Fabric) translate(t *connTable, wc *ibv.WC, out *rdma.Completion) bool {
	c := t.byQPN(wc.QPNum)
	if c == nil || wc.ID < c.floor {
		return false
	}
	s := &c.ring[wc.ID&c.mask]
	*out = rdma.Completion{ID: s.id, Op: s.op, Status: wc.Status.RDMA(), Peer: c.peer, Plane: c.plane}
	c.done.Store(wc.ID + 1)
	return true
}

// parkCQ moves everything the CQ holds into pending, so a reset cannot lose
// a real status (say, the remote invalid request that caused it). Called
// under mu.
func (f *Fabric) parkCQ() {
	t := f.table.Load()
	for len(f.pending) < cap(f.pending) {
		want := min(cap(f.pending)-len(f.pending), len(f.wcs))
		k, err := f.cq.Poll(f.wcs[:want])
		if err != nil || k == 0 {
			return
		}
		for i := range k {
			var c rdma.Completion
			if f.translate(t, &f.wcs[i], &c) {
				f.pending = append(f.pending, c)
			}
		}
	}
}

// Close destroys every queue pair, the CQ and the region, and closes the
// device. Region bytes are invalid afterwards.
func (f *Fabric) Close() error {
	if f.closed.Swap(true) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.release()
}

var _ rdma.Fabric = (*Fabric)(nil)
