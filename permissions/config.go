package permissions

import (
	"errors"
	"fmt"

	"github.com/rdmaconsensus/mu/rdma"
)

// ErrInvalidConfig is wrapped by every error Config.Validate and New return
// for a bad setting.
var ErrInvalidConfig = errors.New("permissions: invalid configuration")

// Config tunes the Manager. Durations are in nanoseconds of the clock that
// drives Step.
type Config struct {
	// PollIntervalNs is the longest gap between Steps that Step asks for;
	// it bounds how long an incoming request waits before it is served.
	PollIntervalNs int64
	// RequestTimeoutNs: a request not acknowledged by a peer within this
	// time is written to that peer again (same epoch), as is an ack whose
	// write failed. A write lost to a dead peer errors only after ~0.5 s
	// on rxe, so the retry is driven by this timer, not by the error.
	RequestTimeoutNs int64
	// RepairIntervalNs is the base gap between two repairs (Reset) of
	// the same replication connection (a Reset costs ~540 µs on rxe and
	// must not be retried in a tight loop while a peer is down, or while a
	// deposed leader keeps writing). The first repair is immediate; if the
	// connection breaks again within this time of its repair, the gap
	// doubles, up to 64 times this.
	RepairIntervalNs int64
	// OnSwitch, if set, is called after every permission switch with its
	// timing. It runs inside Step or Request and must not block.
	OnSwitch func(Switch)
}

// DefaultConfig returns settings sized for rxe: poll every 5 µs (a request
// is served within a few µs of landing), retry after 500 µs (a fallback
// switch at the peer takes ~540 µs, a fast one tens of µs; retrying sooner
// would only rewrite a word the peer has already seen), repair at most
// every ms.
func DefaultConfig() Config {
	return Config{
		PollIntervalNs:   5_000,
		RequestTimeoutNs: 500_000,
		RepairIntervalNs: 1_000_000,
	}
}

// Validate checks each field, naming the field and the rule that fails.
func (c Config) Validate() error {
	switch {
	case c.PollIntervalNs <= 0:
		return fmt.Errorf("permissions: Config.PollIntervalNs = %d: must be positive: %w", c.PollIntervalNs, ErrInvalidConfig)
	case c.RequestTimeoutNs <= 0:
		return fmt.Errorf("permissions: Config.RequestTimeoutNs = %d: must be positive: %w", c.RequestTimeoutNs, ErrInvalidConfig)
	case c.RequestTimeoutNs < c.PollIntervalNs:
		return fmt.Errorf("permissions: Config.RequestTimeoutNs = %d: must be at least PollIntervalNs (%d): %w",
			c.RequestTimeoutNs, c.PollIntervalNs, ErrInvalidConfig)
	case c.RepairIntervalNs < 0:
		return fmt.Errorf("permissions: Config.RepairIntervalNs = %d: must not be negative: %w", c.RepairIntervalNs, ErrInvalidConfig)
	}
	return nil
}

// Switch describes one permission switch: the set of access changes made
// on the local replication connections to serve one request (or, for the
// requester itself, to revoke everyone before leading).
type Switch struct {
	AtNs      int64       // fabric clock when the switch started
	Requester rdma.NodeID // who asked (self for the own revocation)
	Epoch     uint64
	// DurationNs is the fabric-clock time the access changes took.
	DurationNs int64
	// FastPath: every connection was switched with SetRemoteAccess alone.
	FastPath bool
	// Resets is how many connections needed the Reset fallback.
	Resets int
	// Failures is how many connections could be neither switched nor
	// reset; they are left for repair by later Steps.
	Failures int
}

// Stats accumulates switch timings and counts.
type Stats struct {
	Switches      uint64 // switches performed
	FastPath      uint64 // of which entirely on the fast path
	Fallback      uint64 // of which needed at least one Reset
	Incomplete    uint64 // of which left some connection unswitched
	LastSwitchNs  int64
	MaxSwitchNs   int64
	TotalSwitchNs int64
	// Repairs counts Resets of replication connections found in ERROR
	// outside a switch; RepairsFailed those that returned an error.
	Repairs, RepairsFailed uint64
	RequestsSent           uint64 // request writes posted (including retries)
	RequestsServed         uint64 // incoming requests granted
	RequestsSuperseded     uint64 // incoming requests overtaken in the same Step
	AcksSent               uint64
	// AcksHeld counts grants whose ack waited because another node's
	// connection could not be revoked at once.
	AcksHeld     uint64
	WritesFailed uint64 // request/ack writes refused or completed in error
}
