package node

import (
	"slices"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
)

// Term is the timeline of one leader change this node won, in wall-clock
// time: it started the change when its detector named it (StartedAt), a
// majority granted it write permission (GrantedAt), the Paxos prepare
// was done (PreparedAt), recovery of undecided slots was done and it led
// (LeadingAt), and it committed its first entry (FirstCommitAt, zero
// until then).
type Term struct {
	Proposal      uint64
	FirstIndex    consensus.Index
	StartedAt     time.Time
	GrantedAt     time.Time
	PreparedAt    time.Time
	LeadingAt     time.Time
	FirstCommitAt time.Time
}

// termsKept bounds the history Terms returns (oldest dropped).
const termsKept = 1024

// onLeaderChange runs on the driver.
func (n *Node) onLeaderChange(c consensus.LeaderChange) {
	at := n.wall(c.AtNs)
	if !c.Leader {
		n.firstCommitDue.Store(false)
		n.log.Info("stopped leading", "reason", c.Reason.String())
		n.emit(&LeaderChange{ID: n.cfg.ID, Leader: false, At: at, Reason: c.Reason})
		return
	}
	t := Term{
		Proposal:   c.Proposal,
		FirstIndex: c.FirstIndex,
		LeadingAt:  at,
		PreparedAt: at.Add(-time.Duration(c.RecoveryNs)),
	}
	t.GrantedAt = t.PreparedAt.Add(-time.Duration(c.PrepareNs))
	t.StartedAt = t.GrantedAt.Add(-time.Duration(c.PermissionNs))
	n.termsMu.Lock()
	if len(n.terms) == termsKept {
		n.terms = slices.Delete(n.terms, 0, 1)
	}
	n.terms = append(n.terms, t)
	n.termsMu.Unlock()
	n.leaderTerms.Add(1)
	n.firstCommitDue.Store(true)
	n.log.Info("leading", "took_over", c.TookOver.String(), "proposal", c.Proposal, "first_index", c.FirstIndex,
		"permission", time.Duration(c.PermissionNs), "prepare", time.Duration(c.PrepareNs), "recovery", time.Duration(c.RecoveryNs))
	n.emit(&LeaderChange{ID: n.cfg.ID, Leader: true, At: at, Term: t, TookOver: c.TookOver})
}

// onCommit runs on the driver for every commit: one atomic load unless a
// new term's first commit is due.
func (n *Node) onCommit(consensus.Index) {
	if !n.firstCommitDue.Load() {
		return
	}
	n.firstCommitDue.Store(false)
	at := n.wall(n.f.Now())
	n.termsMu.Lock()
	k := len(n.terms) - 1
	n.terms[k].FirstCommitAt = at
	t := n.terms[k]
	n.termsMu.Unlock()
	n.emit(&FirstCommit{ID: n.cfg.ID, Term: t})
}

// Terms returns the timelines of the terms this node led, oldest first
// (at most the latest 1024).
func (n *Node) Terms() []Term {
	n.termsMu.Lock()
	defer n.termsMu.Unlock()
	return slices.Clone(n.terms)
}

// wall converts the fabric's clock to wall-clock time.
func (n *Node) wall(fabricNs int64) time.Time { return time.Unix(0, fabricNs+n.wallOffsetNs) }
