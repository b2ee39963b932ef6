package jepsen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is a fault the schedule injects.
type Kind string

const (
	KillLeader    Kind = "kill-leader"    // SIGKILL the leader; restart it (rejoin) when healed
	KillNode      Kind = "kill-node"      // SIGKILL a random node; restart it
	StopLeader    Kind = "stop-leader"    // SIGSTOP the leader; SIGCONT when healed
	StopNode      Kind = "stop-node"      // SIGSTOP a random node
	IsolateLeader Kind = "isolate-leader" // drop RoCE between the leader and everyone, both ways
	CutPair       Kind = "cut-pair"       // drop RoCE between two nodes, both ways
	CutOneWay     Kind = "cut-one-way"    // one node drops RoCE from another; the reverse flows
	QuorumLoss    Kind = "quorum-loss"    // every link cut but those to a hub, not the leader
	Constrained   Kind = "constrained"    // constrained election (see partial.go)
	Chained       Kind = "chained"        // the leader cut from one follower only
	Netem         Kind = "netem"          // delay, jitter, loss, duplication, reordering on one node
	LinkDown      Kind = "link-down"      // one node's RoCE NIC down
)

// AllKinds is every kind, in the order the weights list them.
var AllKinds = []Kind{KillLeader, KillNode, StopLeader, StopNode, IsolateLeader, CutPair, CutOneWay,
	QuorumLoss, Constrained, Chained, Netem, LinkDown}

// weights favour the acceptance's counts: leader kills and partitions.
var weights = map[Kind]int{KillLeader: 6, KillNode: 2, StopLeader: 3, StopNode: 1, IsolateLeader: 2, CutPair: 2,
	CutOneWay: 3, QuorumLoss: 2, Constrained: 2, Chained: 2, Netem: 2, LinkDown: 1}

// Step is one fault of a schedule. Nodes are chosen when the schedule is
// drawn, by role where the role matters: A and B are 1-based node ids;
// the leader is found when the step runs.
type Step struct {
	Kind  Kind
	A, B  int           // nodes the fault names besides the leader (0: none)
	Hold  time.Duration // how long the fault stays
	Quiet time.Duration // healed time after it, before the next step
	Netem string        // tc netem arguments, for Netem
}

func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s", s.Kind)
	if s.A > 0 {
		fmt.Fprintf(&b, " a=n%d", s.A)
	}
	if s.B > 0 {
		fmt.Fprintf(&b, " b=n%d", s.B)
	}
	fmt.Fprintf(&b, " hold %v quiet %v", s.Hold, s.Quiet)
	if s.Netem != "" {
		fmt.Fprintf(&b, " netem %q", s.Netem)
	}
	return b.String()
}

// ScheduleOptions shapes a schedule.
type ScheduleOptions struct {
	Seed     uint64
	Duration time.Duration // total of holds and quiets
	Nodes    int
	Kinds    []Kind // nil: AllKinds
	// HoldMin/Max and QuietMin/Max bound each step's times.
	HoldMin, HoldMax, QuietMin, QuietMax time.Duration
}

// DefaultScheduleOptions are times that suit TCG VMs on a shared 2-core
// host: a fault lasts long enough for a failover and a rejoin at
// millisecond RTTs, and the cluster settles in between.
func DefaultScheduleOptions(seed uint64, d time.Duration, nodes int) ScheduleOptions {
	return ScheduleOptions{Seed: seed, Duration: d, Nodes: nodes,
		HoldMin: 3 * time.Second, HoldMax: 8 * time.Second, QuietMin: 5 * time.Second, QuietMax: 10 * time.Second}
}

// NewSchedule draws the steps from the seed alone: the same options give
// the same schedule.
func NewSchedule(o ScheduleOptions) ([]Step, error) {
	if o.Nodes < 3 {
		return nil, fmt.Errorf("nodes: %d, need at least 3", o.Nodes)
	}
	if o.HoldMin <= 0 || o.HoldMax < o.HoldMin || o.QuietMin <= 0 || o.QuietMax < o.QuietMin {
		return nil, fmt.Errorf("hold %v..%v, quiet %v..%v: need 0 < min <= max", o.HoldMin, o.HoldMax, o.QuietMin, o.QuietMax)
	}
	kinds := o.Kinds
	if len(kinds) == 0 {
		kinds = AllKinds
	}
	total := 0
	for _, k := range kinds {
		w, ok := weights[k]
		if !ok {
			return nil, fmt.Errorf("unknown fault kind %q", k)
		}
		total += w
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x6a657073656e))
	between := func(lo, hi time.Duration) time.Duration {
		// Whole 100 ms steps keep the printed schedule readable.
		n := int64((hi-lo)/(100*time.Millisecond)) + 1
		return lo + time.Duration(r.Int64N(n))*100*time.Millisecond
	}
	var steps []Step
	var used time.Duration
	for used < o.Duration {
		x := r.IntN(total)
		var k Kind
		for _, k = range kinds {
			if x < weights[k] {
				break
			}
			x -= weights[k]
		}
		s := Step{Kind: k, Hold: between(o.HoldMin, o.HoldMax), Quiet: between(o.QuietMin, o.QuietMax)}
		s.A = 1 + r.IntN(o.Nodes)
		s.B = 1 + (s.A+r.IntN(o.Nodes-1))%o.Nodes // another node
		switch k {
		case KillLeader, StopLeader, IsolateLeader, QuorumLoss, Constrained, Chained:
			// A and B are preferences resolved against the leader at run time.
		case Netem:
			s.B = 0
			s.Netem = netemArgs(r)
		case KillNode, StopNode, LinkDown:
			s.B = 0
		}
		steps = append(steps, s)
		used += s.Hold + s.Quiet
	}
	return steps, nil
}

func netemArgs(r *rand.Rand) string {
	switch r.IntN(5) {
	case 0:
		return fmt.Sprintf("delay %dms %dms", 1+r.IntN(20), r.IntN(5))
	case 1:
		return fmt.Sprintf("loss %d%%", 1+r.IntN(20))
	case 2:
		return fmt.Sprintf("duplicate %d%%", 1+r.IntN(20))
	case 3:
		return fmt.Sprintf("delay %dms reorder %d%% 50%%", 2+r.IntN(10), 10+r.IntN(40))
	}
	return fmt.Sprintf("delay %dms %dms distribution normal loss %d%%", 2+r.IntN(10), 1+r.IntN(5), r.IntN(5))
}
