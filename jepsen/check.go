package jepsen

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/rdmaconsensus/mu/consensus"
)

// Verdict is what the checker found.
type Verdict struct {
	Ops, Acked, Unknown int
	// Lost counts acknowledged orders missing at their index on a live
	// node; LostDetail names the first few.
	Lost       int
	LostDetail []string
	// Divergent is set when two nodes' applied logs are not prefixes of
	// one another (over what both hold one by one).
	Divergent string
	// Linearizable is porcupine's answer on the order history; Unchecked
	// counts acknowledged orders whose index no node holds one by one
	// (applied before every node's snapshot or trim), left out of it.
	Linearizable bool
	LinearNote   string
	Unchecked    int
	// UnknownApplied counts abandoned orders that did take effect.
	UnknownApplied int
}

// OK is a run that acknowledged orders, without loss, divergence or a
// non-linearizable history.
func (v Verdict) OK() bool { return v.Lost == 0 && v.Divergent == "" && v.Linearizable && v.Acked > 0 }

// Check compares the history with every live node's applied log.
//
// One log index holds a batch: the commands the leader packed into that
// slot, in order. Each index must hold the same batch on every node that
// holds it one by one (the logs are prefixes of one another), every
// acknowledged order must be in the batch at its acknowledged index on
// every node that holds that index one by one, and the history must be
// linearizable as appends to one log: an order takes effect at the first
// position (index, then place in the batch) its bytes occupy (a resend
// may commit the same bytes again later, which the book rejects as a
// duplicate), and the model accepts an order only at a position after
// every order taken before it. So an order acknowledged before another
// was submitted must sit earlier in the log, and an order the client gave
// up on may take effect at any time after its call, or never.
func Check(history []Op, logs map[int]NodeLog, timeout time.Duration) Verdict {
	v := Verdict{Ops: len(history)}
	ids := make([]int, 0, len(logs))
	for id := range logs {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	batches := make(map[int]map[consensus.Index][]string, len(ids))
	agreed := map[consensus.Index][]string{}
	for _, id := range ids {
		b := map[consensus.Index][]string{}
		for _, e := range logs[id].Entries {
			if e.Index > logs[id].From() {
				b[e.Index] = append(b[e.Index], string(e.Cmd))
			}
		}
		batches[id] = b
		for i, cmds := range b {
			if have, ok := agreed[i]; ok && !slices.Equal(have, cmds) && v.Divergent == "" {
				v.Divergent = fmt.Sprintf("index %d holds %d commands on one node and %d different ones on node %d", i, len(have), len(cmds), id)
			}
			if len(cmds) > len(agreed[i]) {
				agreed[i] = cmds
			}
		}
	}
	idxs := make([]consensus.Index, 0, len(agreed))
	for i := range agreed {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	first := map[string]uint64{} // command -> its first position in the agreed log
	var pos uint64
	for _, i := range idxs {
		for _, c := range agreed[i] {
			pos++
			if _, ok := first[c]; !ok {
				first[c] = pos
			}
		}
	}
	cover := consensus.Index(math.MaxUint64) // below it no node holds entries one by one
	for _, id := range ids {
		cover = min(cover, logs[id].From())
	}
	lost := func(format string, a ...any) {
		v.Lost++
		if len(v.LostDetail) < 5 {
			v.LostDetail = append(v.LostDetail, fmt.Sprintf(format, a...))
		}
	}
	var ops []porcupine.Operation
	for _, o := range history {
		if !o.Acked {
			v.Unknown++
			if p, ok := first[string(o.Cmd)]; ok {
				v.UnknownApplied++
				ops = append(ops, porcupine.Operation{ClientId: o.Client, Input: o.Cmd, Call: o.CallNs, Output: p, Return: math.MaxInt64})
			}
			continue
		}
		v.Acked++
		for _, id := range ids {
			l := logs[id]
			switch {
			case o.Index > l.LastIndex:
				lost("node %d applied only to %d, an order was acknowledged at %d by n%d", id, l.LastIndex, o.Index, o.By)
			case o.Index > l.From() && !slices.Contains(batches[id][o.Index], string(o.Cmd)):
				lost("node %d lacks the order acknowledged at %d by n%d", id, o.Index, o.By)
			}
		}
		p, ok := first[string(o.Cmd)]
		if !ok {
			if o.Index <= cover {
				v.Unchecked++
			}
			continue
		}
		ops = append(ops, porcupine.Operation{ClientId: o.Client, Input: o.Cmd, Call: o.CallNs, Output: p, Return: o.RetNs})
	}
	switch porcupine.CheckOperationsTimeout(logModel, ops, timeout) {
	case porcupine.Ok:
		v.Linearizable = true
	case porcupine.Illegal:
		v.LinearNote = "no order of the history fits one log"
	default:
		v.LinearNote = fmt.Sprintf("checker gave up after %v", timeout)
	}
	return v
}

// logModel: appends to one log. The state is the latest position taken
// so far; an append that took effect at position p is legal only after it.
var logModel = porcupine.Model{
	Init: func() any { return uint64(0) },
	Step: func(state, _, output any) (bool, any) {
		at := output.(uint64)
		if at > state.(uint64) {
			return true, at
		}
		return false, state
	},
	Equal: func(a, b any) bool { return a.(uint64) == b.(uint64) },
	DescribeOperation: func(input, output any) string {
		return fmt.Sprintf("append -> position %d", output)
	},
}
