// Package verbs is the rdma.Fabric backend on real RDMA devices (and
// Soft-RoCE), built on the libibverbs binding in cgo/verbs.
//
// A node has one registered region (mmap'd; remote read and write, atomics
// only when Config.RegionAccess asks; the per-connection remote access
// flags are the permission switch), one completion queue shared by all
// connections, and one stable Conn per peer per plane, each served by one
// RC queue pair at a time.
//
// Setting up a peer is three steps, so any transport can carry the
// endpoints and a failed exchange changes nothing in service: Prepare
// creates a new set of queue pairs beside the ones in service and returns
// their rdma.Endpoint values to send to the peer; Commit takes the peer's
// endpoints and moves the new queue pairs to RTS; Activate swaps them in,
// completing what the old ones still owed as flushed. Abort releases a
// prepared set instead. Peering adapts them to bootstrap.Bootstrapper; Connect
// is Commit and Activate in one, for wiring in one process.
//
// Threading: Post on a Conn from one goroutine at a time; Poll from one
// goroutine at a time; Reset and SetRemoteAccess may run on another
// goroutine, but not concurrently with Post on the same Conn. Prepare,
// Commit, Activate and Abort may run on any goroutine at any time.
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
	"github.com/rdmaconsensus/mu/rdma/bootstrap"
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

// maxStagedPerPeer bounds the prepared, not yet activated sets of queue
// pairs per peer: handshakes in flight at once.
const maxStagedPerPeer = 4

// ErrBusy: too many prepared sets of queue pairs for one peer.
var ErrBusy = errors.New("rdma/verbs: too many handshakes in flight for one peer")

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

	// lkey and rkey are each plane's keys: what its queue pairs use for
	// local buffers and what they tell the peer.
	lkey, rkey [rdma.NumPlanes]uint32
	// pds[p] is the protection domain of plane p's queue pairs.
	pds [rdma.NumPlanes]*ibv.PD
	// With a confined background plane (Config.BackgroundWriteBytes): its
	// protection domain, the whole region for its local buffers only, and
	// the one range peers may reach through it.
	bgPD          *ibv.PD
	bgLocal, bgMR *ibv.MR

	conns map[rdma.NodeID]*[rdma.NumPlanes]*Conn // fixed at New

	// table maps QP numbers to the queue pairs in service. It is
	// replaced, never mutated, under mu, so Poll reads it without a lock.
	table atomic.Pointer[qpTable]

	// mu serializes Poll against Reset and against swaps, so synthesized
	// completions and the CQ's never race.
	mu      sync.Mutex
	wcs     []ibv.WC
	pending []rdma.Completion // synthesized by Reset and swaps, drained first by Poll
	closed  atomic.Bool

	stageMu sync.Mutex
	staged  map[rdma.NodeID][]*attempt // prepared, not yet activated
}

// attempt is one handshake's set of queue pairs, one per plane.
type attempt struct {
	mu        sync.Mutex // held while its queue pairs are connected or destroyed
	qps       [rdma.NumPlanes]*qpair
	committed bool
	dead      bool // destroyed
}

func (a *attempt) matches(local []rdma.Endpoint) bool {
	if len(local) != int(rdma.NumPlanes) {
		return false
	}
	for _, ep := range local {
		if ep.Plane >= rdma.NumPlanes || a.qps[ep.Plane].local != ep {
			return false
		}
	}
	return true
}

func (a *attempt) destroy() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead {
		return
	}
	a.dead = true
	for _, q := range a.qps {
		if q != nil {
			_ = q.destroy()
		}
	}
}

type qpTable struct {
	qps []*qpair // every queue pair in service
}

func (t *qpTable) byQPN(qpn uint32) *qpair {
	for _, q := range t.qps {
		if q.qpn == qpn {
			return q
		}
	}
	return nil
}

// New opens the device, registers the region, creates the shared CQ and
// one Conn per peer per plane. It creates no queue pairs: each peer's come
// with its first handshake (Prepare, Commit, Activate).
func New(cfg Config) (*Fabric, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Fabric{cfg: cfg, wcs: make([]ibv.WC, pollBatch),
		conns: map[rdma.NodeID]*[rdma.NumPlanes]*Conn{}, staged: map[rdma.NodeID][]*attempt{}}
	f.table.Store(&qpTable{})
	for _, p := range cfg.Peers {
		var cs [rdma.NumPlanes]*Conn
		for pl := range rdma.NumPlanes {
			cs[pl] = &Conn{f: f, peer: p, plane: pl, wrBuf: make([]ibv.SendWR, cfg.SendQueueDepth)}
			cs[pl].access.Store(uint32(cfg.InitialAccess[pl]))
		}
		f.conns[p] = &cs
	}
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
	if f.mr, err = f.pd.RegisterMemory(f.mem, ibv.AccessLocalWrite|toVerbsAccess(cfg.RegionAccess)); err != nil {
		return nil, err
	}
	for p := range rdma.NumPlanes {
		f.pds[p], f.lkey[p], f.rkey[p] = f.pd, f.mr.LKey(), f.mr.RKey()
	}
	if cfg.BackgroundWriteBytes > 0 {
		// An MR serves only queue pairs of its own protection domain: the
		// replication plane's rkey is refused on a background queue pair.
		if f.bgPD, err = f.ctx.AllocPD(); err != nil {
			return nil, err
		}
		if f.bgLocal, err = f.bgPD.RegisterMemory(f.mem, ibv.AccessLocalWrite); err != nil {
			return nil, err
		}
		bgAccess := ibv.AccessLocalWrite | toVerbsAccess(cfg.RegionAccess&^rdma.AccessRemoteAtomic)
		if f.bgMR, err = f.bgPD.RegisterRange(f.mem, cfg.BackgroundWriteOffset, cfg.BackgroundWriteBytes, bgAccess); err != nil {
			return nil, err
		}
		bg := rdma.PlaneBackground
		f.pds[bg], f.lkey[bg], f.rkey[bg] = f.bgPD, f.bgLocal.LKey(), f.bgMR.RKey()
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
	// Resets and swaps park the CQ's contents and their own flushes here.
	f.pending = make([]rdma.Completion, 0, cqe+max(1, len(cfg.Peers))*int(rdma.NumPlanes)*int(cfg.SendQueueDepth))
	ok = true
	return f, nil
}

// release frees whatever New or the connections hold, in dependency order.
// It takes each Conn's lock before the fabric's (the order Reset and swaps
// use), so it must not run under f.mu.
func (f *Fabric) release() error {
	var errs []error
	for _, cs := range f.conns {
		for _, c := range cs {
			c.mu.Lock()
			c.closed.Store(true)
			if c.cur != nil {
				errs = append(errs, c.cur.destroy())
				c.cur = nil
			}
			c.mu.Unlock()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table.Store(&qpTable{})
	f.stageMu.Lock()
	staged := f.staged
	f.staged = map[rdma.NodeID][]*attempt{}
	f.stageMu.Unlock()
	for _, as := range staged {
		for _, a := range as {
			a.destroy()
		}
	}
	if f.cq != nil {
		errs = append(errs, f.cq.Close())
	}
	for _, mr := range []*ibv.MR{f.mr, f.bgLocal, f.bgMR} {
		if mr != nil {
			errs = append(errs, mr.Close())
		}
	}
	if f.bgPD != nil {
		errs = append(errs, f.bgPD.Close())
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

// Conn returns the stable connection to peer on plane, or nil when peer is
// not in Config.Peers. Before the first handshake with peer it is down.
func (f *Fabric) Conn(peer rdma.NodeID, plane rdma.Plane) rdma.Conn {
	if c := f.VerbsConn(peer, plane); c != nil {
		return c
	}
	return nil
}

// VerbsConn is Conn with the concrete type, for tests and tools.
func (f *Fabric) VerbsConn(peer rdma.NodeID, plane rdma.Plane) *Conn {
	cs := f.conns[peer]
	if cs == nil || plane >= rdma.NumPlanes {
		return nil
	}
	return cs[plane]
}

// checkAccess refuses unknown bits and access the region was not
// registered for.
func (f *Fabric) checkAccess(a rdma.Access) error {
	if a&^rdma.AccessAll != 0 {
		return fmt.Errorf("access %#x has unknown bits: %w", uint8(a), ErrConfig)
	}
	if a&^f.cfg.RegionAccess != 0 {
		return fmt.Errorf("access %#x exceeds the region's %#x (Config.RegionAccess): %w", uint8(a), uint8(f.cfg.RegionAccess), ErrConfig)
	}
	return nil
}

// Prepare creates one queue pair per plane for peer, beside the ones in
// service, and returns the local endpoints to send to the peer, sorted by
// plane. Nothing in service changes until Activate.
func (f *Fabric) Prepare(peer rdma.NodeID) ([]rdma.Endpoint, error) {
	if f.closed.Load() {
		return nil, rdma.ErrClosed
	}
	if f.conns[peer] == nil {
		return nil, fmt.Errorf("%w: node %d is not in Peers", ErrConfig, peer)
	}
	f.stageMu.Lock()
	n := len(f.staged[peer])
	f.stageMu.Unlock()
	if n >= maxStagedPerPeer {
		return nil, fmt.Errorf("%w: %d prepared for node %d", ErrBusy, n, peer)
	}
	a := &attempt{}
	eps := make([]rdma.Endpoint, 0, rdma.NumPlanes)
	for p := range rdma.NumPlanes {
		q, err := f.newQPair(f.conns[peer][p])
		if err != nil {
			a.destroy()
			return nil, err
		}
		a.qps[p] = q
		eps = append(eps, q.local)
	}
	f.stageMu.Lock()
	defer f.stageMu.Unlock()
	if f.closed.Load() || len(f.staged[peer]) >= maxStagedPerPeer {
		a.destroy()
		if f.closed.Load() {
			return nil, rdma.ErrClosed
		}
		return nil, fmt.Errorf("%w: %d prepared for node %d", ErrBusy, len(f.staged[peer]), peer)
	}
	f.staged[peer] = append(f.staged[peer], a)
	return eps, nil
}

// findStaged returns peer's prepared attempt named by local (the newest
// when local is nil), removing it from the staged set when take is set.
func (f *Fabric) findStaged(peer rdma.NodeID, local []rdma.Endpoint, take bool) *attempt {
	f.stageMu.Lock()
	defer f.stageMu.Unlock()
	as := f.staged[peer]
	for i := len(as) - 1; i >= 0; i-- {
		if local == nil || as[i].matches(local) {
			a := as[i]
			if take {
				f.staged[peer] = append(as[:i:i], as[i+1:]...)
			}
			return a
		}
	}
	return nil
}

// unstage removes a from peer's prepared sets; false if it was not there.
func (f *Fabric) unstage(peer rdma.NodeID, a *attempt) bool {
	f.stageMu.Lock()
	defer f.stageMu.Unlock()
	as := f.staged[peer]
	for i := range as {
		if as[i] == a {
			f.staged[peer] = append(as[:i:i], as[i+1:]...)
			return true
		}
	}
	return false
}

// Abort destroys the prepared queue pairs of peer named by local, or every
// prepared set of peer's when local is nil. Queue pairs in service are
// never touched.
func (f *Fabric) Abort(peer rdma.NodeID, local []rdma.Endpoint) {
	for {
		a := f.findStaged(peer, local, true)
		if a == nil {
			return
		}
		a.destroy()
		if local != nil {
			return
		}
	}
}

// LocalEndpoints returns the endpoints of peer's queue pairs in service,
// sorted by plane.
func (f *Fabric) LocalEndpoints(peer rdma.NodeID) []rdma.Endpoint {
	var eps []rdma.Endpoint
	for p := range rdma.NumPlanes {
		if c := f.VerbsConn(peer, p); c != nil && c.Local() != (rdma.Endpoint{}) {
			eps = append(eps, c.Local())
		}
	}
	return eps
}

// Commit moves peer's prepared queue pairs named by local (the endpoints
// Prepare returned) to RTS towards remote, the peer's endpoints, one per
// plane in any order. They are not in service until Activate.
func (f *Fabric) Commit(peer rdma.NodeID, local, remote []rdma.Endpoint) error {
	a := f.findStaged(peer, local, false)
	if a == nil {
		return fmt.Errorf("%w: local endpoints for node %d are not a prepared set", ErrEndpoint, peer)
	}
	return f.commit(peer, a, remote)
}

func (f *Fabric) commit(peer rdma.NodeID, a *attempt, remote []rdma.Endpoint) error {
	if f.closed.Load() {
		return rdma.ErrClosed
	}
	if len(remote) != int(rdma.NumPlanes) {
		return fmt.Errorf("%w: %d endpoints from node %d, want one per plane (%d)", ErrEndpoint, len(remote), peer, rdma.NumPlanes)
	}
	var seen [rdma.NumPlanes]bool
	for _, ep := range remote {
		if err := f.checkRemote(peer, ep); err != nil {
			return err
		}
		if seen[ep.Plane] {
			return fmt.Errorf("%w: two endpoints of node %d for plane %v", ErrEndpoint, peer, ep.Plane)
		}
		seen[ep.Plane] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead {
		return fmt.Errorf("%w: prepared set for node %d was released", rdma.ErrClosed, peer)
	}
	for _, ep := range remote {
		q := a.qps[ep.Plane]
		if err := q.connect(ep, f.startAccess(q.conn)); err != nil {
			return err
		}
	}
	a.committed = true
	return nil
}

// startAccess is what a new queue pair lets the peer do: before the first
// handshake what the owner set (Config.InitialAccess unless changed), after
// it Config.InitialAccess: a replacement never inherits a grant, the owner
// grants again (the permission manager repairs it).
func (f *Fabric) startAccess(c *Conn) rdma.Access {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.swaps == 0 {
		return c.RemoteAccess()
	}
	return f.cfg.InitialAccess[c.plane]
}

// Activate puts peer's committed queue pairs named by local in service,
// replacing the ones in service, which are destroyed: every signaled
// request they still owed completes as rdma.StatusFlushed (unsignaled ones
// are dropped, their effect at the target unknown). Posts wait for the swap
// and then go to the new queue pairs.
func (f *Fabric) Activate(peer rdma.NodeID, local []rdma.Endpoint) error {
	a := f.findStaged(peer, local, false)
	if a == nil {
		return fmt.Errorf("%w: local endpoints for node %d are not a prepared set", ErrEndpoint, peer)
	}
	return f.activate(peer, a)
}

func (f *Fabric) activate(peer rdma.NodeID, a *attempt) error {
	a.mu.Lock()
	committed := a.committed && !a.dead
	a.mu.Unlock()
	if !committed {
		return fmt.Errorf("%w: queue pairs for node %d activated before Commit", ErrEndpoint, peer)
	}
	if !f.unstage(peer, a) {
		return fmt.Errorf("%w: prepared set for node %d was released", rdma.ErrClosed, peer)
	}
	cs := f.conns[peer]
	for _, c := range cs {
		c.mu.Lock()
	}
	var old [rdma.NumPlanes]*qpair
	err := func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.closed.Load() {
			return rdma.ErrClosed
		}
		f.parkCQ()
		t := f.table.Load()
		next := &qpTable{qps: make([]*qpair, 0, len(t.qps)+len(cs))}
		for _, q := range t.qps {
			if q.conn.peer != peer {
				next.qps = append(next.qps, q)
			}
		}
		for p, c := range cs {
			old[p] = c.cur
			if old[p] != nil {
				old[p].flushOwed()
			}
			q := a.qps[p]
			c.cur = q
			c.swaps++
			c.access.Store(uint32(q.access))
			next.qps = append(next.qps, q)
		}
		f.table.Store(next)
		return nil
	}()
	for _, c := range cs {
		c.mu.Unlock()
	}
	if err != nil {
		a.destroy()
		return err
	}
	for _, q := range old {
		if q != nil {
			_ = q.destroy()
		}
	}
	return nil
}

// Connect connects peer's newest prepared queue pairs to remote, the
// peer's endpoints (one per plane, any order), and puts them in service:
// Commit and Activate in one, for wiring fabrics without a bootstrap.
func (f *Fabric) Connect(peer rdma.NodeID, remote []rdma.Endpoint) error {
	if f.closed.Load() {
		return rdma.ErrClosed
	}
	a := f.findStaged(peer, nil, false)
	if a == nil {
		return fmt.Errorf("%w: no prepared queue pairs for node %d: call Prepare first", ErrEndpoint, peer)
	}
	if err := f.commit(peer, a, remote); err != nil {
		return err
	}
	return f.activate(peer, a)
}

// Peering adapts Prepare, Commit, Activate and Abort to bootstrap.Bootstrapper.
func (f *Fabric) Peering() bootstrap.Peering {
	return bootstrap.Peering{Prepare: f.Prepare, Commit: f.Commit, Activate: f.Activate, Abort: f.Abort}
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

func (f *Fabric) newQPair(c *Conn) (*qpair, error) {
	qp, err := f.pds[c.plane].CreateQP(f.cq, ibv.QPConfig{MaxSendWR: f.cfg.SendQueueDepth, MaxInline: f.cfg.MaxInline})
	if err != nil {
		return nil, err
	}
	f.maxInline.Store(qp.MaxInline())
	depth := f.cfg.SendQueueDepth
	q := &qpair{conn: c, qp: qp, qpn: qp.Num(), ring: make([]slot, depth), mask: uint64(depth - 1)}
	q.local = rdma.Endpoint{
		Version: rdma.ProtocolVersion, ClusterID: f.cfg.ClusterID, Node: f.cfg.Self, Plane: c.plane,
		GID: f.gid, QPN: qp.Num(), PSN: rand.Uint32() & (1<<24 - 1),
		Addr: f.mem.Addr(), RKey: f.rkey[c.plane], Length: uint64(f.mem.Len()),
	}
	return q, nil
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
	if f.closed.Load() {
		return 0 // Close may have freed the CQ while this waited
	}
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
// replaced or destroyed pair's, or one from before a reset). Called under
// mu.
func (f *Fabric) translate(t *qpTable, wc *ibv.WC, out *rdma.Completion) bool {
	q := t.byQPN(wc.QPNum)
	if q == nil || wc.ID < q.floor {
		return false
	}
	s := &q.ring[wc.ID&q.mask]
	*out = rdma.Completion{ID: s.id, Op: s.op, Status: wc.Status.RDMA(), Peer: q.conn.peer, Plane: q.conn.plane}
	q.done.Store(wc.ID + 1)
	return true
}

// parkCQ moves everything the CQ holds into pending, so a reset or a swap
// cannot lose a real status (say, the remote invalid request that caused
// it). Called under mu.
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
// device. It waits for Posts in progress; region bytes are invalid
// afterwards.
func (f *Fabric) Close() error {
	if f.closed.Swap(true) {
		return nil
	}
	return f.release()
}

var _ rdma.Fabric = (*Fabric)(nil)
