package node

import (
	"context"

	"github.com/rdmaconsensus/mu/rdma"
)

// AddVoter promotes member id, a learner (listed in Peers but not in
// Consensus.Voters), to voter; RemoveVoter makes a voter a learner. This
// node must lead. They return once the change is in force, or why not
// (consensus.Replica.AddVoter): one change at a time, never below three
// voters. Replacing a machine is AddVoter of a spare, then RemoveVoter of
// the machine (docs/membership.md).
func (n *Node) AddVoter(ctx context.Context, id rdma.NodeID) error {
	if n == nil {
		return ErrClosed
	}
	defer n.wake()()
	return n.r.AddVoter(ctx, id)
}

// RemoveVoter: see AddVoter. Removing the leader makes it step down once
// the change is in force.
func (n *Node) RemoveVoter(ctx context.Context, id rdma.NodeID) error {
	if n == nil {
		return ErrClosed
	}
	defer n.wake()()
	return n.r.RemoveVoter(ctx, id)
}

// Voters are the voting members in the newest configuration this node
// knows, in id order.
func (n *Node) Voters() []rdma.NodeID { return n.r.Voters() }

// wake keeps an idle-sleep driver awake for a request that needs several
// steps; call the returned function when done.
func (n *Node) wake() func() {
	if n.cfg.Poll != PollIdleSleep {
		return func() {}
	}
	n.busy.Add(1)
	select {
	case n.kick <- struct{}{}:
	default:
	}
	return func() { n.busy.Add(-1) }
}
