package jepsen

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Faults on the real stack, through each VM's agent: RoCE v2 (UDP 4791)
// dropped with iptables-legacy on the receiving VM's INPUT chain, tc netem
// on the RoCE NIC, the NIC set down, and signals to the node process.

const roceDrop = "-p udp --dport 4791 -j DROP"

func addr(id int) string { return fmt.Sprintf("10.77.0.%d", id) }

// Injector applies steps to a cluster.
type Injector struct {
	c *Cluster
}

// drop makes node on discard RoCE packets from node from.
func (f *Injector) drop(on, from int) error {
	_, err := f.c.Agents[on-1].Sh(fmt.Sprintf("iptables-legacy -A INPUT -s %s %s", addr(from), roceDrop))
	return err
}

func (f *Injector) cutBoth(a, b int) error {
	if err := f.drop(a, b); err != nil {
		return err
	}
	return f.drop(b, a)
}

// HealNetwork flushes every rule, qdisc and link fault on every node.
func (f *Injector) HealNetwork() error {
	var errs []string
	for _, a := range f.c.Agents {
		if _, err := a.Sh("iptables-legacy -F INPUT; tc qdisc del dev eth0 root 2>/dev/null; ip link set eth0 up"); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("heal: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Applied is a step as it ran: the nodes it resolved and how to undo it.
type Applied struct {
	Step
	Leader  int // the leader when it began (0: none known)
	Desc    string
	Killed  []int // restarted when healed
	Stopped []int // continued when healed
	AtNs    int64 // when the fault was in place
}

// Apply injects s, the leader being leader (0: unknown).
func (f *Injector) Apply(s Step, leader int) (*Applied, error) {
	ap := &Applied{Step: s, Leader: leader}
	l := leader
	if l == 0 {
		l = s.A
	}
	// rest: the other nodes, rotated so that the draw picks which comes first.
	var rest []int
	for k := 0; k < f.c.N; k++ {
		id := 1 + (s.A-1+k)%f.c.N
		if id != l {
			rest = append(rest, id)
		}
	}
	var err error
	switch s.Kind {
	case KillLeader, KillNode:
		t := l
		if s.Kind == KillNode {
			t = s.A
		}
		ap.Desc = fmt.Sprintf("SIGKILL n%d", t)
		ap.Killed = []int{t}
		err = f.c.Agents[t-1].Signal("KILL")
	case StopLeader, StopNode:
		t := l
		if s.Kind == StopNode {
			t = s.A
		}
		ap.Desc = fmt.Sprintf("SIGSTOP n%d", t)
		ap.Stopped = []int{t}
		err = f.c.Agents[t-1].Signal("STOP")
	case IsolateLeader:
		ap.Desc = fmt.Sprintf("n%d cut from all, both ways", l)
		for _, o := range rest {
			if err = f.cutBoth(l, o); err != nil {
				break
			}
		}
	case CutPair:
		ap.Desc = fmt.Sprintf("n%d-n%d cut both ways", s.A, s.B)
		err = f.cutBoth(s.A, s.B)
	case CutOneWay:
		ap.Desc = fmt.Sprintf("n%d drops RoCE from n%d", s.A, s.B)
		err = f.drop(s.A, s.B)
	case QuorumLoss:
		hub := rest[0]
		ap.Desc = fmt.Sprintf("every link cut but those to hub n%d (leader n%d)", hub, l)
		err = f.cutAllBut(func(a, b int) bool { return a == hub || b == hub })
	case Chained:
		ap.Desc = fmt.Sprintf("n%d-n%d cut (chain through n%d)", l, rest[len(rest)-1], rest[0])
		err = f.cutBoth(l, rest[len(rest)-1])
	case Constrained:
		lag := rest[0]
		ap.Desc = fmt.Sprintf("n%d lags, then leader n%d cut from all and the rest joined only through n%d", lag, l, lag)
		// The lagging replica misses commits first, for a third of the hold.
		for _, o := range f.others(lag) {
			if err = f.cutBoth(lag, o); err != nil {
				break
			}
		}
		if err == nil {
			time.Sleep(s.Hold / 3)
			if err = f.HealNetwork(); err == nil {
				err = f.cutAllBut(func(a, b int) bool {
					if a == l || b == l {
						return false
					}
					return a == lag || b == lag
				})
			}
		}
	case Netem:
		ap.Desc = fmt.Sprintf("n%d netem %s", s.A, s.Netem)
		_, err = f.c.Agents[s.A-1].Sh("tc qdisc add dev eth0 root netem " + s.Netem)
	case LinkDown:
		ap.Desc = fmt.Sprintf("n%d eth0 down", s.A)
		_, err = f.c.Agents[s.A-1].Sh("ip link set eth0 down")
	default:
		err = fmt.Errorf("unknown fault kind %q", s.Kind)
	}
	ap.AtNs = time.Now().UnixNano()
	return ap, err
}

func (f *Injector) others(id int) []int {
	var o []int
	for k := 1; k <= f.c.N; k++ {
		if k != id {
			o = append(o, k)
		}
	}
	return o
}

// cutAllBut cuts every pair keep does not keep, both ways.
func (f *Injector) cutAllBut(keep func(a, b int) bool) error {
	for a := 1; a <= f.c.N; a++ {
		for b := a + 1; b <= f.c.N; b++ {
			if !keep(a, b) {
				if err := f.cutBoth(a, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Heal undoes ap: the network on every node, then continues stopped nodes
// and restarts killed ones (they rejoin without their log).
func (f *Injector) Heal(ap *Applied) error {
	err := f.HealNetwork()
	for _, id := range ap.Stopped {
		if e := f.c.Agents[id-1].Signal("CONT"); e != nil && err == nil {
			err = e
		}
	}
	for _, id := range ap.Killed {
		if e := f.c.Agents[id-1].Start(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// HitsLeader says whether the fault takes the leader it began with out of
// reach of a majority (a failover is expected).
func (ap *Applied) HitsLeader() bool {
	switch ap.Kind {
	case KillLeader, StopLeader, IsolateLeader, Constrained, QuorumLoss:
		return ap.Leader != 0
	case KillNode, StopNode, LinkDown:
		return ap.Leader != 0 && ap.A == ap.Leader
	}
	return false
}

// IsPartition says whether the fault cuts links (the acceptance counts these).
func (k Kind) IsPartition() bool {
	return slices.Contains([]Kind{IsolateLeader, CutPair, CutOneWay, QuorumLoss, Constrained, Chained}, k)
}
