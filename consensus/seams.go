package consensus

import "github.com/rdmaconsensus/mu/rdma"

// Health is what a replica advertises about itself in its heartbeat word.
type Health uint8

const (
	HealthHealthy  Health = iota
	HealthDegraded        // alive but not preferred as leader
	HealthFenced          // refuses to lead or apply; peers treat it as failed
)

func (h Health) String() string {
	switch h {
	case HealthHealthy:
		return "healthy"
	case HealthDegraded:
		return "degraded"
	case HealthFenced:
		return "fenced"
	}
	return "health(?)"
}

// Detector is the failure detector a Replica consults: package pullscore's
// Detector behind a small adapter. Step and OnCompletion are called by the
// Replica's Step; completions whose owner tag is rdma.OwnerPullscore are routed to it.
type Detector interface {
	Step(now int64) (nextWakeNs int64)
	OnCompletion(c rdma.Completion)
	// Leader is the node this replica believes should lead.
	Leader() (rdma.NodeID, bool)
	Alive(id rdma.NodeID) bool
	// PeerHealth is the health id last advertised.
	PeerHealth(id rdma.NodeID) Health
	SetHealth(h Health)
}

// Permissions is the write-permission manager: package permissions'
// Manager behind a small adapter. Completions whose owner tag is rdma.OwnerPermissions are
// routed to it.
type Permissions interface {
	// Request asks every peer to let this node (and only it) write its
	// log, and returns the epoch of the request.
	Request(now int64) (epoch uint64)
	// GrantedBy reports whether peer acknowledged the request of epoch.
	GrantedBy(peer rdma.NodeID, epoch uint64) bool
	// Abandon stops pursuing the latest request (no longer a candidate).
	Abandon()
	// Holder is who may write the local log: the last node whose request
	// this node granted, or this node after its own Request.
	Holder() (rdma.NodeID, bool)
	Step(now int64) (nextWakeNs int64)
	OnCompletion(c rdma.Completion)
}

// ChecksumRecorder counts verifications of this replica's own log
// (Config.Verifier): ok false is a checksum failure where the slot had to
// be whole. Called on the driving goroutine; it must not block.
type ChecksumRecorder interface {
	RecordRead(ok bool)
}

// StateMachine is the replicated application. Every replica calls Apply for
// the same commands in the same order, exactly once each.
type StateMachine interface {
	// Apply executes one committed command. Several commands may share an
	// index (a batch); they are applied in proposal order. cmd aliases the
	// log and is only valid during the call.
	Apply(index Index, cmd []byte)
	// Snapshot returns the state after the last Apply, for a follower that
	// fell off the log. It may allocate; it is rare.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot that covers every command
	// up to and including index.
	Restore(index Index, snapshot []byte) error
}

// ResultApplier is a StateMachine whose commands produce a result, such
// as the fills of an order. When the state machine implements it, every
// replica calls ApplyResult instead of Apply, and ProposeResult hands the
// result to the proposer.
//
// Delivery: a result reaches the proposer only from the leader that wrote
// the command, once it applied it: a nil error from ProposeResult always
// comes with the command's result. A proposal whose outcome is unknown
// (ErrLeadershipLost, ErrClosed, ErrStopped, a cancelled context) gets no
// result even if it commits; every replica still applies it, and the
// proposer learns its effect from the state machine (make commands
// idempotent or carry a client sequence). Commands a replica receives
// inside a snapshot (Restore) are never applied there one by one and
// produce no result there; a leader never restores its own proposals.
// Submit's ResultFunc carries no result.
type ResultApplier interface {
	// ApplyResult executes one committed command like Apply and appends
	// its result to out, returning the extended slice (out is reused
	// across commands: append to it rather than allocating, and keep no
	// reference to it or to cmd).
	ApplyResult(index Index, cmd []byte, out []byte) []byte
}

// Work request ids of the consensus core: owner tag rdma.OwnerConsensus in
// the top 8 bits, then kind, member, generation and a 40-bit sequence (a log
// index or a part number).
type wrKind uint8

const (
	wrSlot        wrKind = iota + 1 // fast-path or catch-up write; seq = last index covered
	wrCommitWord                    // idle leader's commit word
	wrMinProposal                   // prepare: write min_proposal
	wrHeaderRead                    // read a peer's header line
	wrWindowRead                    // recovery read of a slot window; seq = part
	wrCaughtUp                      // catch-up target word
	wrSnapData                      // snapshot bytes
	wrSnapHeader                    // snapshot header, written last
	wrBeat                          // leader beat word
	wrHandover                      // leadership transfer: handover word
)

const seqMask = 1<<40 - 1

func makeWRID(kind wrKind, member int, gen uint8, seq uint64) uint64 {
	return rdma.OwnerConsensus<<rdma.OwnerShift | uint64(kind&0xf)<<52 | uint64(member&0xf)<<48 |
		uint64(gen)<<40 | seq&seqMask
}

func splitWRID(id uint64) (kind wrKind, member int, gen uint8, seq uint64) {
	return wrKind(id >> 52 & 0xf), int(id >> 48 & 0xf), uint8(id >> 40), id & seqMask
}
