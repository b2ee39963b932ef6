package consensus

import (
	"errors"
	"fmt"

	"github.com/rdmaconsensus/mu/rdma"
)

var (
	// ErrNotLeader: this replica is not the leader; the proposal was not
	// written anywhere. A *NotLeaderError carries who is.
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrLeadershipLost: leadership was lost after the proposal was written;
	// it may or may not commit.
	ErrLeadershipLost = errors.New("consensus: leadership lost, outcome unknown")
	// ErrFenced: the replica fenced itself (checksum failure or operator)
	// and refuses proposals.
	ErrFenced = errors.New("consensus: replica fenced")
	// ErrTooLarge: the proposal exceeds Config.MaxProposalBytes.
	ErrTooLarge = errors.New("consensus: proposal too large")
	// ErrQueueFull: SubmitQueue proposals are already waiting.
	ErrQueueFull = errors.New("consensus: submission queue full")
	// ErrStopped: Run returned (its context ended) with the proposal
	// queued or in flight; its outcome is unknown.
	ErrStopped = errors.New("consensus: replica stopped")
	// ErrClosed: the replica was closed (Close). A proposal that was in
	// flight may or may not have committed.
	ErrClosed = errors.New("consensus: replica closed")
	// ErrRunning: Run was called while another Run drives the replica.
	ErrRunning = errors.New("consensus: replica already driven by Run")
)

// NotLeaderError is returned when a proposal reaches a replica that does not
// lead. Leader is the detector's current choice, valid when Known.
type NotLeaderError struct {
	Leader rdma.NodeID
	Known  bool
}

func (e *NotLeaderError) Error() string {
	if !e.Known {
		return "consensus: not the leader (leader unknown)"
	}
	return fmt.Sprintf("consensus: not the leader (leader is node %d)", e.Leader)
}

func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
