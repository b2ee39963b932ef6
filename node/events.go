package node

import (
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
)

// Event is something that happened to a node: *LeaderChange,
// *FirstCommit, *Fenced, *FailSlow or *Corruption. Node says which.
type Event interface {
	Node() rdma.NodeID
}

// LeaderChange: this node became leader (Leader true) or stopped leading.
type LeaderChange struct {
	ID     rdma.NodeID
	Leader bool
	At     time.Time
	// Term is the leader change's timeline (when Leader): its steps from
	// the start of the change; FirstCommitAt is still zero.
	Term Term
	// Reason says why it stopped leading (when not Leader).
	Reason consensus.StepDownReason
	// TookOver says why it started the change it won (when Leader).
	TookOver consensus.TakeoverReason
}

// FirstCommit: the leader committed its first entry of a term. Term is
// complete.
type FirstCommit struct {
	ID   rdma.NodeID
	Term Term
}

// Fenced: the replica fenced itself (checksum failure of its own log, or
// Fence): it no longer leads, applies or accepts proposals.
type Fenced struct {
	ID rdma.NodeID
	At time.Time
}

// FailSlow: on the leader, a follower's write latency crossed (Slow) or
// fell back under (not Slow) its fail-slow threshold against its own
// baseline.
type FailSlow struct {
	ID      rdma.NodeID
	Slow    bool
	At      time.Time
	Latency consensus.FollowerLatency
}

// Corruption: a committed slot of this replica's log failed its checksum.
type Corruption struct {
	ID    rdma.NodeID
	Index consensus.Index
	At    time.Time
}

func (e *LeaderChange) Node() rdma.NodeID { return e.ID }
func (e *FirstCommit) Node() rdma.NodeID  { return e.ID }
func (e *Fenced) Node() rdma.NodeID       { return e.ID }
func (e *FailSlow) Node() rdma.NodeID     { return e.ID }
func (e *Corruption) Node() rdma.NodeID   { return e.ID }

// eventQueue is the capacity between the driver and OnEvent. Events are
// rare (a leader change, a fence); when OnEvent falls this far behind the
// driver drops rather than waits, and Status counts the drops.
const eventQueue = 256

// emit queues e for OnEvent without blocking.
func (n *Node) emit(e Event) {
	if n.cfg.OnEvent == nil {
		return
	}
	select {
	case n.events <- e:
	default:
		n.dropped.Add(1)
	}
}

// dispatch hands queued events to OnEvent until the queue is closed.
func (n *Node) dispatch() {
	for e := range n.events {
		n.cfg.OnEvent(e)
	}
}

// watchEvery is how often the watcher looks at the fence flag and the
// leader's fail-slow view: both change on the scale of milliseconds.
const watchEvery = 20 * time.Millisecond

// watch turns changes of state the replica publishes (fenced, fail-slow
// followers) into events, until stop is closed.
func (n *Node) watch(stop <-chan struct{}) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	fenced := false
	slow := map[rdma.NodeID]bool{}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if f := n.r.Fenced(); f != fenced {
			fenced = f
			if f {
				n.log.Warn("replica fenced: it no longer leads, applies or accepts proposals")
				n.emit(&Fenced{ID: n.cfg.ID, At: time.Now()})
			}
		}
		if !n.r.IsLeader() {
			clear(slow)
			continue
		}
		for _, fl := range n.r.FollowerLatency() {
			if fl.FailSlow == slow[fl.Peer] {
				continue
			}
			slow[fl.Peer] = fl.FailSlow
			if fl.FailSlow {
				n.log.Warn("follower fail-slow", "peer", fl.Peer, "level", fl.Level.String(),
					"p99", time.Duration(fl.P99Ns), "baseline_p99", time.Duration(fl.BaselineP99Ns))
			}
			n.emit(&FailSlow{ID: n.cfg.ID, Slow: fl.FailSlow, At: time.Now(), Latency: fl})
		}
	}
}
