package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
)

// target is a replica group the demo, the benchmarks and the tests drive:
// in one process over rdma/inproc, or as `mu node` processes.
type target interface {
	members() []rdma.NodeID
	// propose submits cmd at replica id and waits for its commit. A replica
	// that does not lead returns an error matching consensus.ErrNotLeader,
	// a *consensus.NotLeaderError when it knows who does.
	propose(ctx context.Context, id rdma.NodeID, cmd []byte) (consensus.Index, error)
}

// ack is one acknowledged proposal.
type ack struct {
	Index consensus.Index
	Cmd   []byte
	By    rdma.NodeID // the leader that acknowledged it
	AtNs  int64       // Unix ns when the client got the acknowledgement
	LatNs int64       // from the first attempt to the acknowledgement
}

// client proposes commands one at a time and follows the leader: a
// follower's hint when it has one, else the next replica. A proposal whose
// outcome is unknown (leader lost, timeout, replica gone) is sent again
// with the same bytes; the order book's per-client sequence numbers make a
// resend that did commit a rejected duplicate, so it is applied once.
type client struct {
	t  target
	at rdma.NodeID
	// attemptTimeout bounds one attempt at one replica.
	attemptTimeout time.Duration
	// retryPause spaces attempts while no replica leads.
	retryPause time.Duration
}

func newClient(t target) *client {
	return &client{t: t, at: t.members()[0],
		attemptTimeout: 500 * time.Millisecond, retryPause: 50 * time.Microsecond}
}

func (c *client) next() {
	ms := c.t.members()
	i := slices.Index(ms, c.at)
	c.at = ms[(i+1)%len(ms)]
}

// submit proposes cmd until a leader acknowledges it or ctx ends.
func (c *client) submit(ctx context.Context, cmd []byte) (ack, error) {
	start := time.Now()
	var lastErr error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return ack{}, fmt.Errorf("no leader acknowledged the command after %d attempts over %v (last error: %v): %w",
				attempt, time.Since(start).Round(time.Millisecond), lastErr, err)
		}
		actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
		idx, err := c.t.propose(actx, c.at, cmd)
		cancel()
		if err == nil {
			now := time.Now()
			return ack{Index: idx, Cmd: cmd, By: c.at, AtNs: now.UnixNano(), LatNs: int64(now.Sub(start))}, nil
		}
		lastErr = err
		var nl *consensus.NotLeaderError
		if errors.As(err, &nl) && nl.Known && nl.Leader != c.at {
			c.at = nl.Leader
			continue
		}
		c.next()
		time.Sleep(c.retryPause)
	}
}

// nodeLog is what a replica applied, for verification.
// Entries at or below from() were not kept one by one: they came in a
// snapshot, or the bounded log dropped them; the book digest covers them.
type nodeLog struct {
	Entries    []appliedEntry
	RestoredAt consensus.Index
	// TrimmedAt is the newest index the bounded applied log dropped.
	TrimmedAt consensus.Index `json:",omitempty"`
	// StateDigest hashes the order book's canonical snapshot; equal books
	// at equal indexes have equal digests.
	StateDigest uint64
	LastIndex   consensus.Index
}

// verifyLogs checks that every acknowledged command is applied at its
// index on every survivor, and that the survivors applied identical
// sequences of commands (over the range each saw one by one) and hold
// identical books.
func (l nodeLog) from() consensus.Index { return max(l.RestoredAt, l.TrimmedAt) }

func verifyLogs(acked []ack, logs map[rdma.NodeID]nodeLog) error {
	ids := slices.Sorted(func(yield func(rdma.NodeID) bool) {
		for id := range logs {
			if !yield(id) {
				return
			}
		}
	})
	if len(ids) == 0 {
		return errors.New("no survivor to check")
	}
	for _, id := range ids {
		l := logs[id]
		at := map[consensus.Index][][]byte{}
		for _, e := range l.Entries {
			at[e.Index] = append(at[e.Index], e.Cmd)
		}
		missing := 0
		var first ack
		for _, a := range acked {
			if a.Index <= l.from() {
				continue // restored from a snapshot or trimmed; checked through the book digest
			}
			if !slices.ContainsFunc(at[a.Index], func(c []byte) bool { return string(c) == string(a.Cmd) }) {
				if missing == 0 {
					first = a
				}
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("replica %d lacks %d acknowledged commands (first: index %d, acknowledged by %d)", id, missing, first.Index, first.By)
		}
	}
	ref := logs[ids[0]]
	for _, id := range ids[1:] {
		l := logs[id]
		from := max(ref.from(), l.from())
		na, sa := digest(ref.Entries, from)
		nb, sb := digest(l.Entries, from)
		if na != nb || sa != sb {
			return fmt.Errorf("applied logs differ after index %d: replica %d has %d commands (digest %016x), replica %d has %d (digest %016x)",
				from, ids[0], na, sa, id, nb, sb)
		}
		if ref.LastIndex != l.LastIndex || ref.StateDigest != l.StateDigest {
			return fmt.Errorf("books differ: replica %d at index %d digest %016x, replica %d at index %d digest %016x",
				ids[0], ref.LastIndex, ref.StateDigest, id, l.LastIndex, l.StateDigest)
		}
	}
	return nil
}

// breakdown is one failover split into its steps, in ns from the fault.
type breakdown struct {
	DetectNs      int64 // fault -> the new leader's detector names it
	PermissionNs  int64 // -> a majority granted write permission
	CatchUpNs     int64 // -> prepare and recovery done, leading
	FirstCommitNs int64 // -> its first commit
	ClientAckNs   int64 // fault -> the client's first acknowledgement from the new leader
	Complete      bool  // every step was observed
}

func newBreakdown(faultNs int64, s failoverSteps, clientAckNs int64) breakdown {
	b := breakdown{ClientAckNs: clientAckNs - faultNs}
	if s.ChosenAtNs == 0 || s.MajorityAtNs == 0 || s.LeadingAtNs == 0 || s.FirstCommitNs == 0 || s.ChosenAtNs < faultNs {
		return b
	}
	b.DetectNs = s.ChosenAtNs - faultNs
	b.PermissionNs = s.MajorityAtNs - s.ChosenAtNs
	b.CatchUpNs = s.LeadingAtNs - s.MajorityAtNs
	b.FirstCommitNs = s.FirstCommitNs - s.LeadingAtNs
	b.Complete = true
	return b
}

func us(ns int64) string { return fmt.Sprintf("%.1f µs", float64(ns)/1e3) }

func (b breakdown) String() string {
	if !b.Complete {
		return fmt.Sprintf("client ack %s (the new leader's step times were not all recorded)", us(b.ClientAckNs))
	}
	return fmt.Sprintf("detection %s + permission switch %s + prepare/catch-up %s + first commit %s; client ack at %s",
		us(b.DetectNs), us(b.PermissionNs), us(b.CatchUpNs), us(b.FirstCommitNs), us(b.ClientAckNs))
}
