package verbs

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

var liveHandles atomic.Int64

func handleOpened() { liveHandles.Add(1) }
func handleClosed() { liveHandles.Add(-1) }

// LiveHandles is the number of open handles of every kind (contexts, PDs,
// MRs, MWs, CQs, QPs, Memory). Tests compare it before and after to catch leaks.
func LiveHandles() int64 { return liveHandles.Load() }

// Devices lists the RDMA devices libibverbs sees. With none it returns an
// empty list and no error.
func Devices() ([]DeviceInfo, error) { return cListDevices() }

// Context is an open device (ibv_context).
type Context struct {
	h        unsafe.Pointer
	name     string
	attr     DeviceAttr
	children atomic.Int32
}

// Open opens the device called name, or the first device when name is "".
// It fails with ErrNoDevice when there is no such device.
func Open(name string) (*Context, error) {
	h, err := cOpen(name)
	if err != nil {
		return nil, err
	}
	attr, err := cQueryDevice(h)
	if err != nil {
		_ = cCloseDevice(h)
		return nil, err
	}
	if name == "" {
		name = cDeviceName(h)
	}
	handleOpened()
	return &Context{h: h, name: name, attr: attr}, nil
}

// Name is the device name, e.g. "rxe0".
func (c *Context) Name() string { return c.name }

// Attr returns the device limits queried at Open.
func (c *Context) Attr() DeviceAttr { return c.attr }

// QueryPort returns the properties of port (ports count from 1).
func (c *Context) QueryPort(port uint8) (PortAttr, error) {
	if c.h == nil {
		return PortAttr{}, ErrClosed
	}
	if port == 0 || uint32(port) > c.attr.PhysPortCount {
		return PortAttr{}, fmt.Errorf("%w: port %d: device %s has ports 1..%d", ErrInvalid, port, c.name, c.attr.PhysPortCount)
	}
	return cQueryPort(c.h, port)
}

// QueryGID returns entry index of port's GID table.
func (c *Context) QueryGID(port uint8, index int) (GID, error) {
	if c.h == nil {
		return GID{}, ErrClosed
	}
	if port == 0 || index < 0 || index > 255 {
		return GID{}, fmt.Errorf("%w: GID port %d index %d", ErrInvalid, port, index)
	}
	return cQueryGID(c.h, port, index)
}

// FindIPv4GID returns the first GID table entry of port that is an
// IPv4-mapped address: the RoCE v2 IPv4 GID on rxe (index 1 there).
func (c *Context) FindIPv4GID(port uint8) (int, GID, error) {
	pa, err := c.QueryPort(port)
	if err != nil {
		return 0, GID{}, err
	}
	for i := 0; i < int(pa.GIDTableLen) && i < 256; i++ {
		g, err := c.QueryGID(port, i)
		if err != nil {
			continue // unpopulated entries may fail to query
		}
		if !g.IsZero() && g.IPv4() {
			return i, g, nil
		}
	}
	return 0, GID{}, fmt.Errorf("verbs: %s port %d: no IPv4 RoCE GID: %w", c.name, port, ErrNoDevice)
}

// Close closes the device. It fails with ErrBusy while PDs or CQs are open.
func (c *Context) Close() error {
	if c.h == nil {
		return nil
	}
	if n := c.children.Load(); n > 0 {
		return fmt.Errorf("verbs: close %s: %w (%d PDs/CQs open)", c.name, ErrBusy, n)
	}
	if err := cCloseDevice(c.h); err != nil {
		return err
	}
	c.h = nil
	handleClosed()
	return nil
}

// PD is a protection domain.
type PD struct {
	h        unsafe.Pointer
	ctx      *Context
	children atomic.Int32
}

// AllocPD allocates a protection domain.
func (c *Context) AllocPD() (*PD, error) {
	if c.h == nil {
		return nil, ErrClosed
	}
	h, err := cAllocPD(c.h)
	if err != nil {
		return nil, err
	}
	c.children.Add(1)
	handleOpened()
	return &PD{h: h, ctx: c}, nil
}

// Close deallocates the PD. It fails with ErrBusy while MRs, MWs or QPs are
// open.
func (pd *PD) Close() error {
	if pd.h == nil {
		return nil
	}
	if n := pd.children.Load(); n > 0 {
		return fmt.Errorf("verbs: close PD: %w (%d MRs/QPs open)", ErrBusy, n)
	}
	if err := cDeallocPD(pd.h); err != nil {
		return err
	}
	pd.h = nil
	pd.ctx.children.Add(-1)
	handleClosed()
	return nil
}

// MR is a registered memory region.
type MR struct {
	h          unsafe.Pointer
	pd         *PD
	mem        *Memory
	lkey, rkey uint32
	addr, len  uint64 // the registered range
}

// RegisterMemory registers all of mem with the given access. Remote write or
// atomic access requires AccessLocalWrite too (a verbs rule).
func (pd *PD) RegisterMemory(mem *Memory, access Access) (*MR, error) {
	if pd.h == nil {
		return nil, ErrClosed
	}
	if mem == nil || mem.closed || len(mem.buf) == 0 {
		return nil, fmt.Errorf("%w: RegisterMemory: memory is nil or closed", ErrInvalid)
	}
	return pd.RegisterRange(mem, 0, uint64(len(mem.buf)), access)
}

// RegisterRange registers lengthBytes of mem from offsetBytes, which need
// not be page-aligned: a peer's access through its rkey is checked against
// exactly this range. One Memory may carry several registrations, in
// several protection domains, so each set of queue pairs sees only what it
// needs.
func (pd *PD) RegisterRange(mem *Memory, offsetBytes, lengthBytes uint64, access Access) (*MR, error) {
	if pd.h == nil {
		return nil, ErrClosed
	}
	if mem == nil || mem.closed || len(mem.buf) == 0 {
		return nil, fmt.Errorf("%w: RegisterRange: memory is nil or closed", ErrInvalid)
	}
	if lengthBytes == 0 || offsetBytes > uint64(len(mem.buf)) || lengthBytes > uint64(len(mem.buf))-offsetBytes {
		return nil, fmt.Errorf("%w: RegisterRange [%d,+%d) outside %d bytes of memory", ErrInvalid, offsetBytes, lengthBytes, len(mem.buf))
	}
	if access&^mrAccessKnown != 0 {
		return nil, fmt.Errorf("%w: RegisterMemory access %#x has unknown bits", ErrInvalid, uint32(access))
	}
	if access&(AccessRemoteWrite|AccessRemoteAtomic) != 0 && access&AccessLocalWrite == 0 {
		return nil, fmt.Errorf("%w: RegisterMemory: remote write/atomic access needs AccessLocalWrite", ErrInvalid)
	}
	addr := mem.Addr() + offsetBytes
	h, lkey, rkey, err := cRegMR(pd.h, addr, lengthBytes, access)
	if err != nil {
		return nil, err
	}
	pd.children.Add(1)
	mem.regs.Add(1)
	handleOpened()
	return &MR{h: h, pd: pd, mem: mem, lkey: lkey, rkey: rkey, addr: addr, len: lengthBytes}, nil
}

func (mr *MR) LKey() uint32 { return mr.lkey }
func (mr *MR) RKey() uint32 { return mr.rkey }

// Addr is the registered start address (what a peer puts in RemoteAddr).
func (mr *MR) Addr() uint64 { return mr.addr }

// Len is the registered length in bytes.
func (mr *MR) Len() uint64 { return mr.len }

// Close deregisters the region; the Memory stays mapped.
func (mr *MR) Close() error {
	if mr.h == nil {
		return nil
	}
	if err := cDeregMR(mr.h); err != nil {
		return err
	}
	mr.h = nil
	mr.pd.children.Add(-1)
	mr.mem.regs.Add(-1)
	handleClosed()
	return nil
}

// CQ is a completion queue.
type CQ struct {
	h     unsafe.Pointer
	ctx   *Context
	users atomic.Int32
}

// CreateCQ creates a completion queue of at least entries slots.
func (c *Context) CreateCQ(entries int) (*CQ, error) {
	if c.h == nil {
		return nil, ErrClosed
	}
	if entries <= 0 || (c.attr.MaxCQE != 0 && entries > int(c.attr.MaxCQE)) {
		return nil, fmt.Errorf("%w: CreateCQ entries %d: want 1..%d", ErrInvalid, entries, c.attr.MaxCQE)
	}
	h, err := cCreateCQ(c.h, entries)
	if err != nil {
		return nil, err
	}
	c.children.Add(1)
	handleOpened()
	return &CQ{h: h, ctx: c}, nil
}

// Poll moves up to len(out) completions into out and returns how many, in
// one crossing into C. It does not block and does not allocate.
func (cq *CQ) Poll(out []WC) (int, error) {
	if cq.h == nil {
		return 0, ErrClosed
	}
	if len(out) == 0 {
		return 0, nil
	}
	return cPoll(cq.h, out)
}

// PollSpin is Poll that, while the CQ is empty, polls again inside C up to
// spins times before returning 0: a bounded busy-wait for dedicated poller
// threads, one crossing instead of one per attempt. It does not allocate.
func (cq *CQ) PollSpin(out []WC, spins int) (int, error) {
	if cq.h == nil {
		return 0, ErrClosed
	}
	if len(out) == 0 {
		return 0, nil
	}
	return cPollSpin(cq.h, out, max(spins, 0))
}

// Close destroys the CQ. It fails with ErrBusy while QPs use it.
func (cq *CQ) Close() error {
	if cq.h == nil {
		return nil
	}
	if n := cq.users.Load(); n > 0 {
		return fmt.Errorf("verbs: close CQ: %w (%d QPs use it)", ErrBusy, n)
	}
	if err := cDestroyCQ(cq.h); err != nil {
		return err
	}
	cq.h = nil
	cq.ctx.children.Add(-1)
	handleClosed()
	return nil
}

// QP is a reliable-connected queue pair whose send and receive completions
// go to one CQ.
type QP struct {
	h         unsafe.Pointer
	pd        *PD
	cq        *CQ
	num       uint32
	maxInline uint32
	maxSendWR uint32
}

// CreateQP creates an RC queue pair in RESET.
func (pd *PD) CreateQP(cq *CQ, cfg QPConfig) (*QP, error) {
	if pd.h == nil || cq == nil || cq.h == nil {
		return nil, ErrClosed
	}
	if cq.ctx != pd.ctx {
		return nil, fmt.Errorf("%w: CreateQP: CQ and PD belong to different devices", ErrInvalid)
	}
	maxWR := pd.ctx.attr.MaxQPWR
	if cfg.MaxSendWR == 0 || (maxWR != 0 && cfg.MaxSendWR > maxWR) {
		return nil, fmt.Errorf("%w: QPConfig.MaxSendWR %d: want 1..%d", ErrInvalid, cfg.MaxSendWR, maxWR)
	}
	h, num, maxInline, err := cCreateQP(pd.h, cq.h, cfg)
	if err != nil {
		return nil, err
	}
	pd.children.Add(1)
	cq.users.Add(1)
	handleOpened()
	return &QP{h: h, pd: pd, cq: cq, num: num, maxInline: maxInline, maxSendWR: cfg.MaxSendWR}, nil
}

// Num is the QP number peers address.
func (qp *QP) Num() uint32 { return qp.num }

// MaxInline is the largest write sent inline (copied at post time).
func (qp *QP) MaxInline() uint32 { return qp.maxInline }

// MaxSendWR is the send queue depth.
func (qp *QP) MaxSendWR() uint32 { return qp.maxSendWR }

// ToInit moves a RESET QP to INIT on port with the given remote access.
func (qp *QP) ToInit(port uint8, access Access) error {
	if qp.h == nil {
		return ErrClosed
	}
	if port == 0 || access&^accessKnown != 0 {
		return fmt.Errorf("%w: ToInit port %d access %#x", ErrInvalid, port, uint32(access))
	}
	return cToInit(qp.h, port, access)
}

// ToRTR moves an INIT QP to RTR towards the remote end in p.
func (qp *QP) ToRTR(p *ConnParams) error {
	if qp.h == nil {
		return ErrClosed
	}
	if err := p.Validate(); err != nil {
		return err
	}
	return cToRTR(qp.h, p)
}

// ToRTS moves an RTR QP to RTS.
func (qp *QP) ToRTS(p *ConnParams) error {
	if qp.h == nil {
		return ErrClosed
	}
	if err := p.Validate(); err != nil {
		return err
	}
	return cToRTS(qp.h, p)
}

// Connect moves the QP from any state through RESET, INIT, RTR to RTS in one
// crossing. It is both the first connection and the fallback reset cycle.
func (qp *QP) Connect(p *ConnParams) error {
	if qp.h == nil {
		return ErrClosed
	}
	if err := p.Validate(); err != nil {
		return err
	}
	return cCycle(qp.h, p)
}

// SetAccess changes the remote access flags of an INIT, RTR or RTS QP in
// place (IBV_QP_ACCESS_FLAGS): the permission switch.
func (qp *QP) SetAccess(a Access) error {
	if qp.h == nil {
		return ErrClosed
	}
	if a&^accessKnown != 0 {
		return fmt.Errorf("%w: SetAccess %#x has unknown bits", ErrInvalid, uint32(a))
	}
	return cSetAccess(qp.h, a)
}

// ToReset moves the QP to RESET; outstanding work is discarded without
// completions.
func (qp *QP) ToReset() error {
	if qp.h == nil {
		return ErrClosed
	}
	return cSetState(qp.h, QPReset)
}

// ToError moves the QP to ERROR; outstanding work completes as flushed.
func (qp *QP) ToError() error {
	if qp.h == nil {
		return ErrClosed
	}
	return cSetState(qp.h, QPError)
}

// State queries the QP's current state (ibv_query_qp).
func (qp *QP) State() (QPState, error) {
	if qp.h == nil {
		return 0, ErrClosed
	}
	return cQueryState(qp.h)
}

// Post queues wrs as one chain per ibv_post_send, in one crossing into C.
// Binds and invalidations (MW.BindWR, InvalidateWR) may share the chain with
// writes; each takes a send queue slot and completes like them.
// It returns how many were accepted; on error the rest were not posted and
// a full send queue matches rdma.ErrQueueFull. It does not allocate.
func (qp *QP) Post(wrs []SendWR) (int, error) {
	if qp.h == nil {
		return 0, ErrClosed
	}
	if len(wrs) == 0 {
		return 0, nil
	}
	for i := range wrs {
		w := &wrs[i]
		if w.Opcode == OpCompareSwap && (w.Length != 8 || w.RemoteAddr%8 != 0 || w.LocalAddr%8 != 0) {
			return 0, errInvalidCAS
		}
		if w.Opcode < OpWrite || w.Opcode > OpLocalInvalidate {
			return 0, errInvalidOpcode
		}
		if w.Opcode == OpBindMW && (w.CompareAdd == 0 || w.Swap == 0) {
			return 0, errInvalidBind
		}
	}
	return cPost(qp.h, wrs)
}

// Preallocated so the validating loop in Post never allocates.
var (
	errInvalidCAS    = fmt.Errorf("%w: compare-swap needs Length 8 and 8-aligned addresses", ErrInvalid)
	errInvalidOpcode = fmt.Errorf("%w: SendWR opcode", ErrInvalid)
	errInvalidBind   = fmt.Errorf("%w: a bind names no window or region (build it with MW.BindWR)", ErrInvalid)
)

// Close destroys the QP.
func (qp *QP) Close() error {
	if qp.h == nil {
		return nil
	}
	if err := cDestroyQP(qp.h); err != nil {
		return err
	}
	qp.h = nil
	qp.pd.children.Add(-1)
	qp.cq.users.Add(-1)
	handleClosed()
	return nil
}
