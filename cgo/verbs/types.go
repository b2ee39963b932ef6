package verbs

import (
	"fmt"
	"net/netip"
)

// Access is a set of ibv_access_flags (values as libibverbs defines them).
type Access uint32

const (
	AccessLocalWrite   Access = 1 // IBV_ACCESS_LOCAL_WRITE
	AccessRemoteWrite  Access = 2 // IBV_ACCESS_REMOTE_WRITE
	AccessRemoteRead   Access = 4 // IBV_ACCESS_REMOTE_READ
	AccessRemoteAtomic Access = 8 // IBV_ACCESS_REMOTE_ATOMIC
	// AccessMWBind (IBV_ACCESS_MW_BIND) lets memory windows be bound over
	// a registration; it is a registration flag, not a queue-pair one.
	AccessMWBind Access = 16

	accessKnown   = AccessLocalWrite | AccessRemoteWrite | AccessRemoteRead | AccessRemoteAtomic
	mrAccessKnown = accessKnown | AccessMWBind
)

// MTU is an ibv_mtu value: 1 is 256 bytes, up to 5 for 4096 bytes.
type MTU uint8

const (
	MTU256  MTU = 1
	MTU512  MTU = 2
	MTU1024 MTU = 3
	MTU2048 MTU = 4
	MTU4096 MTU = 5
)

// Bytes returns the MTU in bytes, or 0 for an invalid value.
func (m MTU) Bytes() int {
	if m < MTU256 || m > MTU4096 {
		return 0
	}
	return 128 << m
}

func (m MTU) String() string {
	if b := m.Bytes(); b != 0 {
		return fmt.Sprintf("%d", b)
	}
	return fmt.Sprintf("mtu(%d)", uint8(m))
}

// PortState is an ibv_port_state value.
type PortState uint32

const (
	PortNop         PortState = 0
	PortDown        PortState = 1
	PortInit        PortState = 2
	PortArmed       PortState = 3
	PortActive      PortState = 4
	PortActiveDefer PortState = 5
)

func (s PortState) String() string {
	switch s {
	case PortNop:
		return "nop"
	case PortDown:
		return "down"
	case PortInit:
		return "init"
	case PortArmed:
		return "armed"
	case PortActive:
		return "active"
	case PortActiveDefer:
		return "active-defer"
	}
	return fmt.Sprintf("port-state(%d)", uint32(s))
}

// LinkLayer is the port's IBV_LINK_LAYER_* value.
type LinkLayer uint32

const (
	LinkLayerUnspecified LinkLayer = 0
	LinkLayerInfiniBand  LinkLayer = 1
	LinkLayerEthernet    LinkLayer = 2
)

func (l LinkLayer) String() string {
	switch l {
	case LinkLayerUnspecified:
		return "unspecified"
	case LinkLayerInfiniBand:
		return "infiniband"
	case LinkLayerEthernet:
		return "ethernet"
	}
	return fmt.Sprintf("link-layer(%d)", uint32(l))
}

// QPState is an ibv_qp_state value.
type QPState int32

const (
	QPReset QPState = 0
	QPInit  QPState = 1
	QPRTR   QPState = 2
	QPRTS   QPState = 3
	QPSQD   QPState = 4
	QPSQE   QPState = 5
	QPError QPState = 6
)

func (s QPState) String() string {
	switch s {
	case QPReset:
		return "RESET"
	case QPInit:
		return "INIT"
	case QPRTR:
		return "RTR"
	case QPRTS:
		return "RTS"
	case QPSQD:
		return "SQD"
	case QPSQE:
		return "SQE"
	case QPError:
		return "ERROR"
	}
	return fmt.Sprintf("qp-state(%d)", int32(s))
}

// GID is a 16-byte port global identifier; for RoCE v2 over IPv4 it is the
// IPv4-mapped IPv6 address of the interface.
type GID [16]byte

// IsZero reports an unset table entry.
func (g GID) IsZero() bool { return g == GID{} }

// IPv4 reports whether g is an IPv4-mapped address (RoCE v2 over IPv4).
func (g GID) IPv4() bool { return netip.AddrFrom16(g).Is4In6() }

func (g GID) String() string { return netip.AddrFrom16(g).String() }

// DeviceInfo names an RDMA device.
type DeviceInfo struct {
	Name string
	GUID uint64
}

// DeviceAttr holds the device limits the binding uses. Layout mirrors
// mu_device_attr in shim.h.
type DeviceAttr struct {
	NodeGUID        uint64
	MaxQPWR         uint32
	MaxSGE          uint32
	MaxCQE          uint32
	MaxQPRdAtom     uint32 // responder resources per QP
	MaxQPInitRdAtom uint32 // outstanding reads/atomics a QP may initiate
	AtomicCap       uint32 // 0: IBV_ATOMIC_NONE
	PhysPortCount   uint32
	MaxMW           uint32 // memory windows the device can hold
	DeviceCapFlags  uint64 // ibv_device_cap_flags
}

// MemoryWindowsType2 reports whether the device offers type 2 memory
// windows (rxe since Linux 5.13 reports type 2B).
func (a DeviceAttr) MemoryWindowsType2() bool {
	return a.MaxMW > 0 && a.DeviceCapFlags&(CapMemWindowType2A|CapMemWindowType2B) != 0
}

// Device capability bits of DeviceAttr.DeviceCapFlags (ibv_device_cap_flags).
const (
	CapMemWindow       uint64 = 1 << 17 // IBV_DEVICE_MEM_WINDOW
	CapMemWindowType2A uint64 = 1 << 23 // IBV_DEVICE_MEM_WINDOW_TYPE_2A
	CapMemWindowType2B uint64 = 1 << 24 // IBV_DEVICE_MEM_WINDOW_TYPE_2B
)

// PortAttr holds the port properties the binding uses. Layout mirrors
// mu_port_attr in shim.h.
type PortAttr struct {
	State       PortState
	MaxMTU      MTU
	_           [3]byte
	ActiveMTU   MTU
	_           [3]byte
	LinkLayer   LinkLayer
	GIDTableLen uint32
	LID         uint32
}

// Opcode selects the one-sided operation of a SendWR.
type Opcode uint8

const (
	OpWrite       Opcode = 1 // IBV_WR_RDMA_WRITE
	OpRead        Opcode = 2 // IBV_WR_RDMA_READ
	OpCompareSwap Opcode = 3 // IBV_WR_ATOMIC_CMP_AND_SWP, 8 bytes
	// OpBindMW binds a type 2 memory window (IBV_WR_BIND_MW): a local
	// operation, built with BindWR.
	OpBindMW Opcode = 4
	// OpLocalInvalidate invalidates the rkey in RKey (IBV_WR_LOCAL_INV): a
	// local operation, built with InvalidateWR.
	OpLocalInvalidate Opcode = 5
)

func (o Opcode) String() string {
	switch o {
	case OpWrite:
		return "write"
	case OpRead:
		return "read"
	case OpCompareSwap:
		return "compare-swap"
	case OpBindMW:
		return "bind-mw"
	case OpLocalInvalidate:
		return "local-invalidate"
	}
	return fmt.Sprintf("opcode(%d)", uint8(o))
}

// SendFlags modify a SendWR.
type SendFlags uint8

const (
	// FlagSignaled asks for a completion on success (errors always complete).
	FlagSignaled SendFlags = 1
	// FlagNoInline forbids inlining a small write; by default a write whose
	// length fits the QP's inline limit is sent inline.
	FlagNoInline SendFlags = 2
	// FlagFence waits for earlier reads and atomics before this request.
	FlagFence SendFlags = 4
)

// SendWR is one one-sided work request. Its layout mirrors mu_send_wr in
// shim.h so that a []SendWR crosses into C without copying. A bind or an
// invalidation reuses its fields (see BindWR and InvalidateWR, which build
// them).
type SendWR struct {
	ID         uint64 // returned as WC.ID
	LocalAddr  uint64 // address in a registered region (source or sink)
	RemoteAddr uint64 // address in the peer's region; 8-aligned for atomics
	CompareAdd uint64 // OpCompareSwap: expected value
	Swap       uint64 // OpCompareSwap: new value
	LKey       uint32
	RKey       uint32
	Length     uint32 // bytes; 8 for OpCompareSwap
	Opcode     Opcode
	Flags      SendFlags
	_          [2]byte
}

// WCOpcode is the ibv_wc_opcode of a successful completion.
type WCOpcode uint32

const (
	WCSend        WCOpcode = 0
	WCWrite       WCOpcode = 1
	WCRead        WCOpcode = 2
	WCCompareSwap WCOpcode = 3
	WCFetchAdd    WCOpcode = 4
	WCBindMW      WCOpcode = 5 // IBV_WC_BIND_MW
	WCLocalInv    WCOpcode = 6 // IBV_WC_LOCAL_INV
)

// WC is one work completion. Its layout mirrors mu_wc in shim.h. Opcode and
// ByteLen are defined only when Status is WCSuccess.
type WC struct {
	ID        uint64
	Status    WCStatus
	Opcode    WCOpcode
	QPNum     uint32
	VendorErr uint32
	ByteLen   uint32
	_         uint32
}

// ConnParams is what moving an RC QP through INIT, RTR and RTS needs: the
// remote end's address and the local transport settings. Layout mirrors
// mu_conn_params in shim.h.
type ConnParams struct {
	DGID      GID    // remote port GID
	DestQPN   uint32 // remote QP number, 24 bits
	RQPSN     uint32 // remote's initial send PSN, 24 bits
	SQPSN     uint32 // local initial send PSN, 24 bits
	Access    Access // remote access granted on this QP
	Port      uint8  // local port, from 1
	SGIDIndex uint8  // local GID table index (1 is RoCE v2 IPv4 on rxe)
	HopLimit  uint8
	PathMTU   MTU // usually the port's active MTU
	// Timeout is the ACK timeout exponent: 4.096 µs * 2^Timeout (0..31).
	Timeout    uint8
	RetryCount uint8 // transport retries, 0..7
	RNRRetry   uint8 // receiver-not-ready retries, 0..7 (7 is infinite)
	// MinRNRTimer is the IB-encoded RNR NAK delay (0..31).
	MinRNRTimer     uint8
	MaxRdAtomic     uint8 // reads/atomics this QP may have in flight
	MaxDestRdAtomic uint8 // reads/atomics the peer may have in flight here
	_               [2]byte
}

const maxPSN = 1<<24 - 1

// Validate checks field ranges and names the first bad field.
func (p *ConnParams) Validate() error {
	switch {
	case p.DestQPN > maxPSN || p.DestQPN == 0:
		return fmt.Errorf("%w: DestQPN %d: want 1..2^24-1", ErrInvalid, p.DestQPN)
	case p.RQPSN > maxPSN:
		return fmt.Errorf("%w: RQPSN %d exceeds 24 bits", ErrInvalid, p.RQPSN)
	case p.SQPSN > maxPSN:
		return fmt.Errorf("%w: SQPSN %d exceeds 24 bits", ErrInvalid, p.SQPSN)
	case p.Access&^accessKnown != 0:
		return fmt.Errorf("%w: Access %#x has unknown bits", ErrInvalid, uint32(p.Access))
	case p.Port == 0:
		return fmt.Errorf("%w: Port 0: ports count from 1", ErrInvalid)
	case p.PathMTU.Bytes() == 0:
		return fmt.Errorf("%w: PathMTU %d: want 1 (256) .. 5 (4096)", ErrInvalid, p.PathMTU)
	case p.Timeout > 31:
		return fmt.Errorf("%w: Timeout %d: want 0..31", ErrInvalid, p.Timeout)
	case p.RetryCount > 7:
		return fmt.Errorf("%w: RetryCount %d: want 0..7", ErrInvalid, p.RetryCount)
	case p.RNRRetry > 7:
		return fmt.Errorf("%w: RNRRetry %d: want 0..7", ErrInvalid, p.RNRRetry)
	case p.MinRNRTimer > 31:
		return fmt.Errorf("%w: MinRNRTimer %d: want 0..31", ErrInvalid, p.MinRNRTimer)
	case p.DGID.IsZero():
		return fmt.Errorf("%w: DGID is zero", ErrInvalid)
	}
	return nil
}

// QPConfig sizes a queue pair.
type QPConfig struct {
	// MaxSendWR is the send queue depth, also the largest chain one
	// ibv_post_send carries.
	MaxSendWR uint32
	// MaxInline is the inline data size to ask for; the provider may grant
	// less (see QP.MaxInline).
	MaxInline uint32
}
