// Package rdma defines the Fabric seam that mu's protocol talks to: one
// registered memory region per node, reliable connections to each peer on
// each plane, asynchronous one-sided operations and their completions.
//
// Three backends implement it: rdma/verbs on real RDMA NICs (and Soft-RoCE),
// sim for deterministic fault testing in virtual time, and rdma/inproc, a
// real-time in-process fabric for library users' tests. All three reproduce
// the semantics rxe exhibits (see the conformance suite in rdma/conformance).
package rdma

import (
	"errors"
	"fmt"
)

// NodeID names a replica. IDs are small integers, unique in a cluster.
type NodeID uint16

// Plane separates traffic whose permissions differ. Replication writes travel
// on PlaneReplication, whose remote-write flag is the leader permission;
// heartbeat reads and permission requests travel on PlaneBackground, which is
// never revoked, so revoking a leader does not blind its failure detector.
type Plane uint8

const (
	PlaneReplication Plane = iota
	PlaneBackground
	NumPlanes
)

func (p Plane) String() string {
	switch p {
	case PlaneReplication:
		return "replication"
	case PlaneBackground:
		return "background"
	}
	return fmt.Sprintf("plane(%d)", uint8(p))
}

// Op is the kind of a one-sided operation.
type Op uint8

const (
	OpWrite Op = iota + 1
	OpRead
	OpCompareSwap
)

func (o Op) String() string {
	switch o {
	case OpWrite:
		return "write"
	case OpRead:
		return "read"
	case OpCompareSwap:
		return "compare-swap"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Status is the outcome of a work request, named as verbs names them.
type Status uint8

const (
	// StatusSuccess: the operation took effect at the target.
	StatusSuccess Status = iota
	// StatusRemoteInvalidRequest (IBV_WC_REM_INV_REQ_ERR): the target refused
	// the request, e.g. a write after its remote-write flag was revoked. On
	// rxe both queue pairs then go to ERROR until reset.
	StatusRemoteInvalidRequest
	// StatusRemoteAccessError (IBV_WC_REM_ACCESS_ERR): bad rkey or bounds.
	StatusRemoteAccessError
	// StatusRetryExceeded (IBV_WC_RETRY_EXC_ERR): the peer never answered
	// within timeout x retry count. Arrives late (about 0.5 s with defaults).
	StatusRetryExceeded
	// StatusFlushed (IBV_WC_WR_FLUSH_ERR): the connection was in ERROR when
	// the request was processed; nothing happened at the target.
	StatusFlushed
	// StatusLocalError covers local protection, length and QP errors.
	StatusLocalError
)

var statusNames = [...]string{
	StatusSuccess:              "success",
	StatusRemoteInvalidRequest: "remote invalid request",
	StatusRemoteAccessError:    "remote access error",
	StatusRetryExceeded:        "transport retry counter exceeded",
	StatusFlushed:              "work request flushed",
	StatusLocalError:           "local error",
}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Err returns nil for success and a *CompletionError otherwise, which matches
// the sentinel errors below with errors.Is.
func (s Status) Err() error {
	if s == StatusSuccess {
		return nil
	}
	return &CompletionError{Status: s}
}

// Sentinel errors for completion statuses, for errors.Is.
var (
	ErrRemoteInvalidRequest = errors.New("rdma: remote invalid request")
	ErrRemoteAccess         = errors.New("rdma: remote access error")
	ErrRetryExceeded        = errors.New("rdma: transport retry counter exceeded")
	ErrFlushed              = errors.New("rdma: work request flushed")
	ErrLocal                = errors.New("rdma: local error")

	// ErrNotSupported: the backend cannot do this here (no cgo, no device).
	ErrNotSupported = errors.New("rdma: not supported")
	// ErrConnError: the connection is in ERROR; Reset it before posting.
	ErrConnError = errors.New("rdma: connection in error state")
	// ErrQueueFull: more outstanding work requests than the queue holds.
	ErrQueueFull = errors.New("rdma: send queue full")
	// ErrOutOfBounds: an offset or length falls outside a region.
	ErrOutOfBounds = errors.New("rdma: offset or length outside the region")
	// ErrClosed: the fabric or connection was closed.
	ErrClosed = errors.New("rdma: closed")
)

// CompletionError is a failed completion.
type CompletionError struct{ Status Status }

func (e *CompletionError) Error() string { return "rdma: " + e.Status.String() }

func (e *CompletionError) Is(target error) bool {
	switch e.Status {
	case StatusRemoteInvalidRequest:
		return target == ErrRemoteInvalidRequest
	case StatusRemoteAccessError:
		return target == ErrRemoteAccess
	case StatusRetryExceeded:
		return target == ErrRetryExceeded
	case StatusFlushed:
		return target == ErrFlushed
	case StatusLocalError:
		return target == ErrLocal
	}
	return false
}

// Access is the set of remote operations a connection lets its peer perform
// on the local region. Changing it is the permission switch.
type Access uint8

const (
	AccessRemoteRead Access = 1 << iota
	AccessRemoteWrite
	AccessRemoteAtomic

	AccessNone Access = 0
	AccessAll         = AccessRemoteRead | AccessRemoteWrite | AccessRemoteAtomic
)

// ConnState mirrors the queue-pair states that matter to the protocol.
type ConnState uint8

const (
	ConnReady ConnState = iota // RTS: operations flow
	ConnError                  // ERROR: everything posted is flushed; Reset
	ConnDown                   // closed, or never connected
)

func (s ConnState) String() string {
	switch s {
	case ConnReady:
		return "ready"
	case ConnError:
		return "error"
	case ConnDown:
		return "down"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// WorkRequest is one one-sided operation. Offsets are byte offsets into the
// local region and into the peer's region. For OpCompareSwap Length is 8,
// LocalOffset receives the remote's old value, and both offsets must be
// 8-byte aligned.
type WorkRequest struct {
	ID           uint64 // returned in the completion
	Op           Op
	LocalOffset  uint64
	RemoteOffset uint64
	Length       uint32
	Compare      uint64 // OpCompareSwap only
	Swap         uint64 // OpCompareSwap only
	// Unsignaled asks for no completion on success (errors always complete).
	Unsignaled bool
}

// Completion reports the end of a signaled work request, or of any failed one.
type Completion struct {
	ID     uint64
	Op     Op
	Status Status
	Peer   NodeID
	Plane  Plane
}

// Region is the node's registered memory, off the Go heap. Peers write and
// read it without the owner's CPU; the owner sees their writes appear
// asynchronously, so the owner must detect complete data by a canary or
// checksum, never by assuming a write is whole.
type Region interface {
	// Bytes is the whole region. The slice aliases NIC-visible memory; it is
	// valid until the fabric is closed.
	Bytes() []byte
}

// Conn is a reliable connection to one peer on one plane. Operations posted on
// one Conn take effect at the target in posting order.
type Conn interface {
	Peer() NodeID
	Plane() Plane
	// Post queues work requests in one call (one crossing into the driver
	// for the verbs backend). It returns the number accepted; on error the
	// rest were not posted. Post does not block and does not allocate.
	Post(wrs []WorkRequest) (int, error)
	// SetRemoteAccess sets what the peer may do to the local region through
	// this connection. Removing AccessRemoteWrite is how a node revokes a
	// leader's permission; on rxe it takes tens of microseconds.
	SetRemoteAccess(a Access) error
	// RemoteAccess returns the flags last set.
	RemoteAccess() Access
	// Reset cycles the local end RESET -> INIT -> RTR -> RTS with the same
	// peer parameters and the given access. After an error both ends must be
	// reset before operations flow again.
	Reset(a Access) error
	State() ConnState
}

// Fabric is one node's view of the network.
type Fabric interface {
	Self() NodeID
	Region() Region
	// Conn returns the connection to peer on plane, or nil if there is none.
	Conn(peer NodeID, plane Plane) Conn
	// Poll moves up to len(out) finished completions into out and returns
	// how many. It never blocks and never allocates.
	Poll(out []Completion) int
	// Now is the fabric's monotonic clock in nanoseconds: the wall clock
	// for real backends, virtual time in the simulator.
	Now() int64
	Close() error
}
