package main

import (
	"context"
	"hash/fnv"
	"sync"
	"time"

	"github.com/rdmaconsensus/mu/appliedlog"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/examples/orderbook/rsm"
	"github.com/rdmaconsensus/mu/node"
)

// appliedEntry is one command as a replica applied it.
type appliedEntry = appliedlog.Entry

// bookSM is the replicated order book with its applied log.
type bookSM struct {
	*rsm.StateMachine
	// applyMu makes the applied log and the book change together, so a
	// reader sees both at the same index.
	applyMu sync.Mutex
	// log is the demo's and the tests' record of applied commands, bounded
	// (the node sets applied_log_max_bytes).
	log *appliedlog.Log
}

func newBookSM() *bookSM {
	return &bookSM{StateMachine: rsm.New(orderbook.DefaultConfig(), nil), log: appliedlog.New(0)}
}

func (s *bookSM) Apply(index consensus.Index, cmd []byte) {
	s.applyMu.Lock()
	s.log.Add(index, cmd)
	s.StateMachine.Apply(index, cmd)
	s.applyMu.Unlock()
}

func (s *bookSM) Restore(index consensus.Index, snap []byte) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.StateMachine.Restore(index, snap); err != nil {
		return err
	}
	s.log.Restore(index)
	return nil
}

// digest is a hash of the applied commands after index from, with their
// count, for comparing replicas without shipping their logs.
func digest(entries []appliedEntry, from consensus.Index) (n int, sum uint64) {
	h := fnv.New64a()
	var b [8]byte
	for _, e := range entries {
		if e.Index <= from {
			continue
		}
		n++
		for i := range 8 {
			b[i] = byte(uint64(e.Index) >> (8 * i))
		}
		h.Write(b[:])
		h.Write(e.Cmd)
	}
	return n, h.Sum64()
}

// failoverSteps is a term's timeline as the client endpoint serves it, in
// Unix ns: when the new leader started the change (its detector named it
// and it asked for write permission), when a majority granted it, when it
// started leading (prepare and recovery done) and its first commit.
type failoverSteps struct {
	ChosenAtNs, RequestAtNs, MajorityAtNs, LeadingAtNs, FirstCommitNs int64
	LeaderTerms                                                       uint64
}

// stepsOf converts node's term timelines.
func stepsOf(terms []node.Term) []failoverSteps {
	ns := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixNano()
	}
	out := make([]failoverSteps, len(terms))
	for i, t := range terms {
		out[i] = failoverSteps{ns(t.StartedAt), ns(t.StartedAt), ns(t.GrantedAt), ns(t.LeadingAt), ns(t.FirstCommitAt), uint64(i + 1)}
	}
	return out
}

// termAt picks, from terms in Unix ns, the latest that started leading
// by atNs: the term that acknowledged something at atNs.
func termAt(terms []failoverSteps, atNs int64) (failoverSteps, bool) {
	for i := len(terms) - 1; i >= 0; i-- {
		if terms[i].LeadingAtNs != 0 && terms[i].LeadingAtNs <= atNs {
			return terms[i], true
		}
	}
	return failoverSteps{}, false
}

// replicaNode is one running replica with the order book it applies to.
type replicaNode struct {
	n  *node.Node
	sm *bookSM
}

// startReplica runs a replica of the order book with nc.
func startReplica(ctx context.Context, nc node.Config) (*replicaNode, error) {
	sm := newBookSM()
	nc.StateMachine = sm
	n, err := node.Start(ctx, nc)
	if err != nil {
		return nil, err
	}
	return &replicaNode{n: n, sm: sm}, nil
}

// propose replicates cmd through this replica, which must lead.
func (r *replicaNode) propose(ctx context.Context, cmd []byte) (consensus.Index, error) {
	idx, _, err := r.n.Propose(ctx, cmd, nil)
	return idx, err
}

// stop closes the replica; it may be called again.
func (r *replicaNode) stop() { _ = r.n.Close() }

// wallTerms is the replica's term history in Unix ns.
func (r *replicaNode) wallTerms() []failoverSteps { return stepsOf(r.n.Terms()) }

// pollMode maps the config's poll_mode to the node's.
func pollMode(s string) node.PollMode {
	switch s {
	case PollSpin:
		return node.PollSpin
	case PollIdleSleep:
		return node.PollIdleSleep
	}
	return node.PollSpinYield
}
