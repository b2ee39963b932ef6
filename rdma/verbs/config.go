package verbs

import (
	"fmt"
	"slices"

	"github.com/rdmaconsensus/mu/rdma"
)

// Config describes one node's verbs fabric.
type Config struct {
	Self      rdma.NodeID
	ClusterID uint64
	// Peers are the other nodes; Self must not be among them.
	Peers []rdma.NodeID
	// Device is the RDMA device name ("" for the first one), Port its port
	// (from 1).
	Device string
	Port   uint8
	// GIDIndex selects the local GID; -1 picks the first IPv4-mapped entry
	// (RoCE v2 over IPv4: index 1 on rxe).
	GIDIndex int
	// RegionBytes is the size of the registered region (rounded up to pages).
	RegionBytes int
	// SendQueueDepth is the number of outstanding work requests per
	// connection: a power of two. Unsignaled requests stay outstanding until
	// a later signaled one on the same connection completes.
	SendQueueDepth uint32
	// MaxInline is the inline size to ask for; writes up to what the device
	// grants are copied into the work request at post time. 0 never
	// inlines. Inline saves a DMA read on hardware NICs (set 64-256 there),
	// but rxe runs inline writes slower than gathered ones (measured in the
	// Soft-RoCE VM: 1.5-3x the time per post), so the default is 0.
	MaxInline uint32
	// TimeoutExp is the ACK timeout exponent (4.096 µs * 2^TimeoutExp) and
	// RetryCount the transport retries: together they decide how long a
	// request to a dead peer takes to fail (14 and 7: about 0.5 s on rxe).
	TimeoutExp uint8
	RetryCount uint8
	// RNRRetry is the receiver-not-ready retry count (7: infinite).
	RNRRetry uint8
	// MaxRdAtomic bounds reads and atomics in flight per connection, in
	// each direction; 0 takes min(16, device limit).
	MaxRdAtomic uint8
	// RegionAccess is the most any peer may ever do to the region: the
	// access it is registered with. A connection's access never exceeds
	// it. mu's protocol reads and writes; atomics only if a user needs them.
	RegionAccess rdma.Access
	// InitialAccess is what a peer may do through a new queue pair, per
	// plane: least privilege by default, remote write on the replication
	// plane only once the permission switch grants it (a replacement queue
	// pair after a re-handshake starts here too), and the background plane
	// writable for heartbeat and permission words.
	InitialAccess [rdma.NumPlanes]rdma.Access
	// BackgroundWriteOffset and BackgroundWriteBytes, when the length is
	// not zero, confine the background plane to that byte range of the
	// region (mu's heartbeat and permission words): its queue pairs live in
	// a protection domain of their own whose only remotely accessible
	// registration is that range, so neither the rkey they hand out nor the
	// replication plane's reaches anything else through them. Zero: the
	// background plane reaches the whole region as the replication plane
	// does.
	BackgroundWriteOffset uint64
	BackgroundWriteBytes  uint64
}

// DefaultConfig returns the settings used on rxe, for self with no peers.
func DefaultConfig() Config {
	return Config{
		Port:           1,
		GIDIndex:       -1,
		RegionBytes:    1 << 20,
		SendQueueDepth: 128,
		MaxInline:      0,
		TimeoutExp:     14,
		RetryCount:     7,
		RNRRetry:       7,
		RegionAccess:   rdma.AccessRemoteRead | rdma.AccessRemoteWrite,
		InitialAccess: [rdma.NumPlanes]rdma.Access{
			rdma.PlaneReplication: rdma.AccessRemoteRead,
			rdma.PlaneBackground:  rdma.AccessRemoteRead | rdma.AccessRemoteWrite,
		},
	}
}

// Validate checks each field and names the first bad one.
func (c *Config) Validate() error {
	switch {
	case slices.Contains(c.Peers, c.Self):
		return fmt.Errorf("%w: Peers contains Self (%d)", ErrConfig, c.Self)
	case c.Port == 0:
		return fmt.Errorf("%w: Port 0: ports count from 1", ErrConfig)
	case c.GIDIndex < -1 || c.GIDIndex > 255:
		return fmt.Errorf("%w: GIDIndex %d: want -1 (auto) or 0..255", ErrConfig, c.GIDIndex)
	case c.RegionBytes <= 0:
		return fmt.Errorf("%w: RegionBytes %d: want > 0", ErrConfig, c.RegionBytes)
	case c.SendQueueDepth == 0 || c.SendQueueDepth&(c.SendQueueDepth-1) != 0 || c.SendQueueDepth > 1<<15:
		return fmt.Errorf("%w: SendQueueDepth %d: want a power of two up to 32768", ErrConfig, c.SendQueueDepth)
	case c.TimeoutExp > 31:
		return fmt.Errorf("%w: TimeoutExp %d: want 0..31", ErrConfig, c.TimeoutExp)
	case c.RetryCount > 7:
		return fmt.Errorf("%w: RetryCount %d: want 0..7", ErrConfig, c.RetryCount)
	case c.RNRRetry > 7:
		return fmt.Errorf("%w: RNRRetry %d: want 0..7", ErrConfig, c.RNRRetry)
	case c.RegionAccess&^rdma.AccessAll != 0:
		return fmt.Errorf("%w: RegionAccess %#x has unknown bits", ErrConfig, uint8(c.RegionAccess))
	}
	if c.BackgroundWriteBytes > 0 && (c.BackgroundWriteOffset > uint64(c.RegionBytes) || c.BackgroundWriteBytes > uint64(c.RegionBytes)-c.BackgroundWriteOffset) {
		return fmt.Errorf("%w: BackgroundWriteOffset %d + BackgroundWriteBytes %d exceed RegionBytes %d", ErrConfig, c.BackgroundWriteOffset, c.BackgroundWriteBytes, c.RegionBytes)
	}
	for p, a := range c.InitialAccess {
		if a&^c.RegionAccess != 0 {
			return fmt.Errorf("%w: InitialAccess[%v] %#x exceeds RegionAccess %#x", ErrConfig, rdma.Plane(p), uint8(a), uint8(c.RegionAccess))
		}
	}
	seen := make(map[rdma.NodeID]bool, len(c.Peers))
	for _, p := range c.Peers {
		if seen[p] {
			return fmt.Errorf("%w: Peers lists %d twice", ErrConfig, p)
		}
		seen[p] = true
	}
	return nil
}

// AckTimeoutNs is the ACK timeout that exponent e encodes: 4.096 µs * 2^e.
func AckTimeoutNs(e uint8) int64 { return 4096 << e }

// TransportTimeoutNs estimates how long a request to a dead peer takes to
// complete with retry exceeded: one ACK timeout per attempt.
func (c *Config) TransportTimeoutNs() int64 {
	return int64(c.RetryCount+1) * AckTimeoutNs(c.TimeoutExp)
}

// SetTransportTimeoutNs sets TimeoutExp and RetryCount so that a request to
// a dead peer fails after at most ns (and not much sooner): 3 retries with
// the largest ACK timeout that fits.
func (c *Config) SetTransportTimeoutNs(ns int64) {
	c.TimeoutExp, c.RetryCount = timeoutFor(ns)
}

func timeoutFor(ns int64) (exp, retry uint8) {
	const retries = 3
	exp = 0
	for exp < 31 && int64(retries+1)*AckTimeoutNs(exp+1) <= ns {
		exp++
	}
	return exp, retries
}
