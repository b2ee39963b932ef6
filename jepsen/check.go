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
	// (applied before every node's snapshot or trim).
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
// Each index must hold the same command on every node that holds it one
// by one (the logs are prefixes of one another), every acknowledged order
// must be at its acknowledged index on every node that holds that index
// one by one, and the history must be linearizable as appends to one log:
// an order takes effect at the first index its bytes occupy (a resend may
// commit the same bytes again later, which the book rejects as a
// duplicate), and the model accepts an order only at an index above every
// order taken before it. So an order acknowledged before another was
// submitted must sit earlier in the log, and an order the client gave up
// on may take effect at any time after its call, or never.
func Check(history []Op, logs map[int]NodeLog, timeout time.Duration) Verdict {
	v := Verdict{Ops: len(history)}
	ids := make([]int, 0, len(logs))
	for id := range logs {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	// The agreed log: index -> command, from every node.
	agreed := map[consensus.Index][]byte{}
	for _, id := range ids {
		for _, e := range logs[id].Entries {
			if e.Index <= logs[id].From() {
				continue
			}
			if c, ok := agreed[e.Index]; ok && string(c) != string(e.Cmd) && v.Divergent == "" {
				v.Divergent = fmt.Sprintf("index %d differs between nodes (node %d has %x)", e.Index, id, e.Cmd)
			}
			agreed[e.Index] = e.Cmd
		}
	}
	first := map[string]consensus.Index{}
	idxs := make([]consensus.Index, 0, len(agreed))
	for i := range agreed {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	for _, i := range idxs {
		if _, ok := first[string(agreed[i])]; !ok {
			first[string(agreed[i])] = i
		}
	}
	cover := consensus.Index(math.MaxUint64) // the lowest index any node holds one by one
	for _, id := range ids {
		cover = min(cover, logs[id].From())
	}
	var ops []porcupine.Operation
	for _, o := range history {
		if !o.Acked {
			v.Unknown++
			if i, ok := first[string(o.Cmd)]; ok {
				v.UnknownApplied++
				ops = append(ops, porcupine.Operation{ClientId: o.Client, Input: o.Cmd, Call: o.CallNs, Output: uint64(i), Return: math.MaxInt64})
			}
			continue
		}
		v.Acked++
		for _, id := range ids {
			l := logs[id]
			if o.Index <= l.From() || o.Index > l.LastIndex {
				if o.Index > l.LastIndex {
					v.Lost++
					if len(v.LostDetail) < 5 {
						v.LostDetail = append(v.LostDetail, fmt.Sprintf("node %d applied only to %d, order acknowledged at %d by n%d", id, l.LastIndex, o.Index, o.By))
					}
				}
				continue
			}
			if string(entryAt(l, o.Index)) != string(o.Cmd) {
				v.Lost++
				if len(v.LostDetail) < 5 {
					v.LostDetail = append(v.LostDetail, fmt.Sprintf("node %d lacks the order acknowledged at %d by n%d", id, o.Index, o.By))
				}
			}
		}
		at, ok := first[string(o.Cmd)]
		if !ok {
			if o.Index <= cover {
				v.Unchecked++
				at = o.Index
			} else {
				continue // counted as lost above
			}
		}
		ops = append(ops, porcupine.Operation{ClientId: o.Client, Input: o.Cmd, Call: o.CallNs, Output: uint64(at), Return: o.RetNs})
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

func entryAt(l NodeLog, i consensus.Index) []byte {
	k, ok := slices.BinarySearchFunc(l.Entries, i, func(e LogEntry, i consensus.Index) int {
		switch {
		case e.Index < i:
			return -1
		case e.Index > i:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return l.Entries[k].Cmd
}

// logModel: appends to one log. The state is the highest index taken so
// far; an append that took effect at index i is legal only above it.
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
		return fmt.Sprintf("append -> %d", output)
	},
}
