package consensus

import (
	"errors"
	"fmt"
	"slices"

	"github.com/rdmaconsensus/mu/hwmon/failslow"
	"github.com/rdmaconsensus/mu/permissions"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
)

// Index is a log position. The first entry is 1; 0 means none.
type Index uint64

// Config tunes a Replica. Start from DefaultConfig and set Members.
type Config struct {
	// Members are all replicas that may ever take part, including this
	// one: between 3 and 15, ids unique. Each has its connections, region
	// slots and proposal numbers from the start; which of them vote is the
	// configuration (Voters), changed online.
	Members []rdma.NodeID
	// Voters are the members that vote at start (empty: all of them).
	// The others are learners: replicated to, never counted in a quorum,
	// never leaders, until AddVoter promotes one (docs/membership.md).
	// Every node of a group must start with the same Members and Voters.
	Voters []rdma.NodeID
	// LogSlots is the ring capacity. A follower that falls more than
	// LogSlots behind the leader is restored from a snapshot.
	LogSlots int
	// MaxPayloadBytes bounds one slot's payload: a batch of proposals, each
	// framed by a 4-byte length.
	MaxPayloadBytes int
	// MaxInflightSlots bounds slots written but not yet committed.
	MaxInflightSlots int
	// ReadWindowSlots is how many slots a new leader reads from each peer
	// per recovery round.
	ReadWindowSlots int
	// RecoveryReadBytes bounds one recovery read from one peer: each round
	// reads min(ReadWindowSlots, RecoveryReadBytes/slot stride) slots (at
	// least one), and more rounds follow while slots are found. A read
	// longer than the detector's failure bound at link speed delays the
	// heartbeat reads queued behind it until the candidate loses its
	// majority. It also bounds a leader's catch-up writes in flight to one
	// follower (at least one slot), for the same reason. 0 means 16 KiB.
	RecoveryReadBytes int
	// MaxBulkWriteBytes bounds one write of snapshot bytes to a follower.
	MaxBulkWriteBytes int
	// MaxWriteBytes is the largest single RDMA write of log slots: the path
	// MTU (1024 on rxe). Longer slots and ranges are split into writes of at
	// most this size, posted in order on one connection. A write of one
	// packet is checked against the target's access flags as a whole, so
	// once a peer revokes this replica, none of its older writes lands in
	// part afterwards; a longer message that started before a revocation
	// would keep landing packet by packet.
	MaxWriteBytes int
	// MaxOutstandingWrites bounds writes in flight per follower (below the
	// send queue depth of the fabric).
	MaxOutstandingWrites int
	// SubmitQueue is the number of proposals that may wait for the driver.
	SubmitQueue int
	// SnapshotMaxBytes is the largest state-machine snapshot the region can
	// carry to a follower that fell off the log. 0 disables snapshots.
	SnapshotMaxBytes int

	// CommitPropagationNs: an idle leader writes the commit word to each
	// follower this long after its commit index last advanced without a
	// slot write carrying it. Bounds how stale a follower's commit is.
	CommitPropagationNs int64
	// ElectionTimeoutNs: a step of leader change (permission, prepare,
	// recovery) that has not reached a majority by then is restarted.
	ElectionTimeoutNs int64
	// HeaderPollNs: how often a leader reads followers' headers to learn
	// their applied position (log reclamation, catch-up).
	HeaderPollNs int64
	// CorruptConfirmNs: a committed slot that fails its checksum is re-read
	// after this delay before the replica fences itself, so an in-flight
	// rewrite by a new leader is not taken for corruption.
	CorruptConfirmNs int64
	// MaxIdleNs caps the time between Steps the replica asks for.
	MaxIdleNs int64
	// LeaderBeatNs: a leader writes a beat word into each follower's header
	// this often. A follower whose log holder has not beaten for
	// 10*LeaderBeatNs no longer defers to it when the detector names the
	// follower as leader (leadership is otherwise sticky).
	LeaderBeatNs int64
	// LeaderStableNs: a replica must be the detector's choice for this long
	// before it starts a leader change; damps ping-pong when scores flap.
	LeaderStableNs int64

	// ReadLeaseNs enables read leases (docs/reads.md): a candidate waits
	// this long after its prepare before it leads, and a leader answers
	// reads locally until ReadLeaseNs·(1−ρ)/(1+ρ) − ReadLeaseMarginNs
	// after the latest time a majority confirmed it (ρ =
	// ReadLeaseDriftPPM). Every member must use the same value. It adds
	// up to ReadLeaseNs to each leader change; 0 (the default) turns
	// leases off and every read takes a confirmation round (ReadIndex).
	// At most ElectionTimeoutNs/2.
	ReadLeaseNs int64
	// ReadLeaseDriftPPM bounds how far any two members' clocks may drift
	// apart in rate, in parts per million (not their offset: leases use
	// durations only).
	ReadLeaseDriftPPM int64
	// ReadLeaseMarginNs is taken off the lease for the time between a
	// Step's clock reading and the read it allows.
	ReadLeaseMarginNs int64

	// ProbeIntervalNs: an idle leader commits an empty entry this long
	// after its last slot (layer 2 of failure detection), so commit
	// latency and every follower's write latency stay measured when there
	// is no traffic. 0 disables probes.
	ProbeIntervalNs int64
	// FailSlow configures the leader's per-follower write-latency tracker
	// (HDR histograms; a follower whose p99 exceeds WarnRatio or
	// CriticalRatio times its own baseline is fail-slow). The zero value
	// means failslow.DefaultConfig() (hwmon.DefaultFailSlowConfig is the
	// same). Its durations are read on the fabric's clock.
	FailSlow failslow.Config
	// Verifier, when set, counts every slot this replica verifies before
	// applying it and every checksum failure of its own log (read
	// failures, as in Consul raft-wal's verifier), which is what the
	// arbiter's log-checksum row reads. A peer's damaged copy seen during
	// recovery is not counted: it is not this node's fault. An
	// *hwmon.Verifier is one.
	Verifier ChecksumRecorder

	// PullScore and Permissions configure the failure detector and the
	// permission manager New builds.
	PullScore   pullscore.Config
	Permissions permissions.Config

	// Rejoining marks a replica restarted without its log. It neither
	// leads nor counts in a recovery quorum until a leader has caught it up.
	Rejoining bool

	// Durability selects how the log is persisted: memory (the default,
	// Mu as published), async or sync; see Durability. Async and sync
	// need Storage, the replica's journal, which New loads: a replica
	// restarts from what it holds (see docs/durability.md).
	Durability Durability
	Storage    Storage
	// NewCluster lets a replica whose journal is empty start as a voter,
	// as a member of a cluster being created (etcd's initial-cluster-state
	// new). Without it, an empty journal in the async or sync mode means
	// the replica lost its disk or never had one here: it rejoins, so an
	// acceptor that forgot what it accepted cannot vote however slow its
	// peers are to answer. A journal that holds records ignores it.
	NewCluster bool

	// OnLeaderChange, OnCommit and OnCorruption are called from Step on the
	// driving goroutine; they must not block and must not call Step.
	OnLeaderChange func(LeaderChange)
	OnCommit       func(Index)
	OnCorruption   func(CorruptionReport)
	// OnConfChange receives each configuration entry applied here (also
	// when a journal is replayed): its index and the voters it names, in
	// force from index+LogSlots on. Called from Step like the above.
	OnConfChange func(index Index, voters []rdma.NodeID)
	// OnWriteLatency receives the latency of every fast-path slot write
	// (post to completion, on Step's clock) and OnProbeCommit that of every
	// probe (write to commit), for metrics export. Called from Step like
	// the callbacks above; they must not allocate if the hot path is to
	// stay allocation-free.
	OnWriteLatency func(peer rdma.NodeID, latencyNs int64)
	OnProbeCommit  func(latencyNs int64)
}

// LeaderChange reports this replica gaining or losing leadership.
type LeaderChange struct {
	Leader     bool   // true when this replica became leader
	Proposal   uint64 // proposal number of the new term (when Leader)
	FirstIndex Index  // first index this leader will propose (when Leader)
	AtNs       int64
	// Breakdown of the leader change (when Leader), from the moment this
	// replica started it: waiting for a majority to grant write
	// permission, the prepare (read and write min_proposal), and the
	// recovery reads and adoption of undecided slots.
	PermissionNs, PrepareNs, RecoveryNs int64
	// Reason says why it stopped leading (when not Leader).
	Reason StepDownReason
	// TookOver says why it started the change it won (when Leader).
	TookOver TakeoverReason
}

// CorruptionReport describes a committed slot whose checksum failed.
type CorruptionReport struct {
	Index Index
	AtNs  int64
}

// DefaultConfig returns settings for a small cluster on Soft-RoCE-class
// latency. Members must still be set.
func DefaultConfig() Config {
	return Config{
		PullScore:            pullscore.DefaultConfig(),
		Permissions:          permissions.DefaultConfig(),
		LogSlots:             1024,
		MaxPayloadBytes:      4096,
		MaxInflightSlots:     32,
		ReadWindowSlots:      32,
		RecoveryReadBytes:    defaultRecoveryReadBytes,
		MaxBulkWriteBytes:    256 << 10,
		MaxWriteBytes:        1024,
		MaxOutstandingWrites: 200,
		SubmitQueue:          1024,
		SnapshotMaxBytes:     1 << 20,
		CommitPropagationNs:  5_000,
		ElectionTimeoutNs:    2_000_000,
		HeaderPollNs:         50_000,
		CorruptConfirmNs:     20_000,
		MaxIdleNs:            100_000,
		LeaderBeatNs:         200_000,
		LeaderStableNs:       0,
		ProbeIntervalNs:      10_000_000,
		ReadLeaseDriftPPM:    200,
		ReadLeaseMarginNs:    2_000,
		FailSlow:             failslow.DefaultConfig(),
	}
}

// ErrInvalidConfig is wrapped by every Validate error.
var ErrInvalidConfig = errors.New("consensus: invalid config")

func cfgErr(field, rule string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(rule, args...))
}

// Validate checks floors and cross-field rules and names the field at fault.
func (c *Config) Validate() error {
	n := len(c.Members)
	if n < 3 || n > 15 {
		return cfgErr("Members", "must list 3..15 replicas, got %d", n)
	}
	for i, a := range c.Members {
		for _, b := range c.Members[i+1:] {
			if a == b {
				return cfgErr("Members", "lists node %d twice", a)
			}
		}
	}
	for _, v := range c.Voters {
		if !slices.Contains(c.Members, v) {
			return cfgErr("Voters", "lists node %d, which is not in Members", v)
		}
	}
	if nv := len(c.Voters); nv > 0 && nv < minVoters {
		return cfgErr("Voters", "must list at least %d voters, got %d", minVoters, nv)
	}
	for i, a := range c.Voters {
		if slices.Contains(c.Voters[i+1:], a) {
			return cfgErr("Voters", "lists node %d twice", a)
		}
	}
	switch {
	case c.LogSlots < 16:
		return cfgErr("LogSlots", "must be >= 16, got %d", c.LogSlots)
	case c.MaxPayloadBytes < 16 || c.MaxPayloadBytes > 1<<24:
		return cfgErr("MaxPayloadBytes", "must be in 16..16MiB, got %d", c.MaxPayloadBytes)
	case c.MaxInflightSlots < 1 || c.MaxInflightSlots > c.LogSlots/2:
		return cfgErr("MaxInflightSlots", "must be in 1..LogSlots/2 (%d), got %d", c.LogSlots/2, c.MaxInflightSlots)
	case c.ReadWindowSlots < 1 || c.ReadWindowSlots > c.LogSlots/2:
		return cfgErr("ReadWindowSlots", "must be in 1..LogSlots/2 (%d), got %d", c.LogSlots/2, c.ReadWindowSlots)
	case c.RecoveryReadBytes < 0:
		return cfgErr("RecoveryReadBytes", "must be >= 0 (0 means %d), got %d", defaultRecoveryReadBytes, c.RecoveryReadBytes)
	case c.MaxBulkWriteBytes < c.MaxPayloadBytes+64:
		return cfgErr("MaxBulkWriteBytes", "must hold one slot (>= %d), got %d", c.MaxPayloadBytes+64, c.MaxBulkWriteBytes)
	case c.MaxWriteBytes < 256 || c.MaxWriteBytes%slotTrailer != 0:
		return cfgErr("MaxWriteBytes", "must be >= 256 and a multiple of %d (a slot trailer never spans two writes), got %d", slotTrailer, c.MaxWriteBytes)
	case c.MaxOutstandingWrites < c.MaxInflightSlots*c.writesPerSlot()+16:
		return cfgErr("MaxOutstandingWrites", "must hold MaxInflightSlots slots of %d writes each plus 16 (%d), got %d",
			c.writesPerSlot(), c.MaxInflightSlots*c.writesPerSlot()+16, c.MaxOutstandingWrites)
	case c.SubmitQueue < 1:
		return cfgErr("SubmitQueue", "must be >= 1, got %d", c.SubmitQueue)
	case c.SnapshotMaxBytes < 0:
		return cfgErr("SnapshotMaxBytes", "must be >= 0, got %d", c.SnapshotMaxBytes)
	case c.CommitPropagationNs < 1:
		return cfgErr("CommitPropagationNs", "must be > 0, got %d", c.CommitPropagationNs)
	case c.ElectionTimeoutNs < 1_000:
		return cfgErr("ElectionTimeoutNs", "must be >= 1000 ns, got %d", c.ElectionTimeoutNs)
	case c.HeaderPollNs < 1:
		return cfgErr("HeaderPollNs", "must be > 0, got %d", c.HeaderPollNs)
	case c.CorruptConfirmNs < 0:
		return cfgErr("CorruptConfirmNs", "must be >= 0, got %d", c.CorruptConfirmNs)
	case c.MaxIdleNs < 1:
		return cfgErr("MaxIdleNs", "must be > 0, got %d", c.MaxIdleNs)
	case c.CommitPropagationNs > c.MaxIdleNs*1000:
		return cfgErr("CommitPropagationNs", "must be <= 1000*MaxIdleNs, got %d", c.CommitPropagationNs)
	case c.LeaderBeatNs < 1:
		return cfgErr("LeaderBeatNs", "must be > 0, got %d", c.LeaderBeatNs)
	case c.LeaderStableNs < 0:
		return cfgErr("LeaderStableNs", "must be >= 0, got %d", c.LeaderStableNs)
	case c.ProbeIntervalNs < 0:
		return cfgErr("ProbeIntervalNs", "must be >= 0 (0 disables probes), got %d", c.ProbeIntervalNs)
	case c.ReadLeaseDriftPPM < 0 || c.ReadLeaseDriftPPM >= 100_000:
		return cfgErr("ReadLeaseDriftPPM", "must be in 0..99999, got %d", c.ReadLeaseDriftPPM)
	case c.ReadLeaseMarginNs < 0:
		return cfgErr("ReadLeaseMarginNs", "must be >= 0, got %d", c.ReadLeaseMarginNs)
	case c.ReadLeaseNs < 0 || c.ReadLeaseNs > c.ElectionTimeoutNs/2:
		return cfgErr("ReadLeaseNs", "must be in 0..ElectionTimeoutNs/2 (%d), got %d", c.ElectionTimeoutNs/2, c.ReadLeaseNs)
	case c.ReadLeaseNs > 0 && c.leaseNs() <= 0:
		return cfgErr("ReadLeaseNs", "leaves no lease after drift and ReadLeaseMarginNs (%d), got %d", c.ReadLeaseMarginNs, c.ReadLeaseNs)
	}
	if err := c.validateDurability(); err != nil {
		return err
	}
	if c.FailSlow != (failslow.Config{}) {
		if err := c.FailSlow.Validate(); err != nil {
			return fmt.Errorf("%w: FailSlow: %w", ErrInvalidConfig, err)
		}
	}
	if err := c.PullScore.Validate(); err != nil {
		return fmt.Errorf("%w: PullScore: %w", ErrInvalidConfig, err)
	}
	if err := c.Permissions.Validate(); err != nil {
		return fmt.Errorf("%w: Permissions: %w", ErrInvalidConfig, err)
	}
	return nil
}

// defaultRecoveryReadBytes keeps a recovery read of one peer under 80 us on
// a 200 MiB/s link, well inside the detector's failure bound.
const defaultRecoveryReadBytes = 16 << 10

// recoveryReadBytes is RecoveryReadBytes with 0 meaning the default.
func (c *Config) recoveryReadBytes() int {
	if c.RecoveryReadBytes == 0 {
		return defaultRecoveryReadBytes
	}
	return c.RecoveryReadBytes
}

// failSlowConfig is FailSlow with the zero value meaning the default.
func (c *Config) failSlowConfig() failslow.Config {
	if c.FailSlow == (failslow.Config{}) {
		return failslow.DefaultConfig()
	}
	return c.FailSlow
}

// leaseNs is how long a leader's lease lasts on its own clock after a
// majority confirmed it: a candidate's wait of ReadLeaseNs on a clock
// running up to ρ fast is at least ReadLeaseNs/(1+ρ) real time, and a
// lease of L on a clock up to ρ slow lasts at most L/(1−ρ), so
// L = ReadLeaseNs·(1−ρ)/(1+ρ) ends first; less the margin.
func (c *Config) leaseNs() int64 {
	const ppm = 1_000_000
	return c.ReadLeaseNs*(ppm-c.ReadLeaseDriftPPM)/(ppm+c.ReadLeaseDriftPPM) - c.ReadLeaseMarginNs
}

// writesPerSlot is how many writes the largest slot takes.
func (c *Config) writesPerSlot() int {
	n := int(encodedSlotBytes(c.MaxPayloadBytes))
	if c.MaxWriteBytes <= 0 {
		return n
	}
	return (n + c.MaxWriteBytes - 1) / c.MaxWriteBytes
}

// MaxProposalBytes is the largest payload Propose accepts under c.
func (c *Config) MaxProposalBytes() int { return c.MaxPayloadBytes - batchFrameBytes }

// RegionBytes is the region size a fabric must register for c.
func (c *Config) RegionBytes() uint64 { l := NewLayout(*c); return l.TotalBytes }
