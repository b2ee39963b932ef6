package sim

import (
	"fmt"

	"github.com/rdmaconsensus/mu/rdma"
)

// Fault injection. Every call takes effect at the current virtual time; use
// Schedule (or a swarm Plan) to place faults in the future.

// Crash stops the node dead: its CPU is no longer stepped, its NIC neither
// sends nor answers, and what it had posted vanishes without completions.
// Peers' requests to it go unanswered and fail with retry exceeded after the
// transport timeout, never sooner. keepMemory decides whether its region
// survives until Restart (persistent memory) or comes back zeroed.
func (w *World) Crash(id rdma.NodeID, keepMemory bool) {
	n := w.mustNode(id)
	if n.crashed {
		return
	}
	n.crashed = true
	n.keepMemory = keepMemory
	n.forEachEnd(func(e *connEnd) { e.drop() })
	n.cq, n.cqHead = n.cq[:0], 0
	if w.tracing {
		w.traceFault("crash", id, id, b2i(keepMemory))
	}
}

// SetRestartHook sets the function Restart calls once the node is back, to
// install a fresh Stepper (the crashed one's state is gone).
func (w *World) SetRestartHook(fn func(id rdma.NodeID)) { w.onRestart = fn }

// Restart brings a crashed node back, as a new process would come back:
//   - its region is zeroed unless it crashed with keepMemory;
//   - its stepper is removed (the restart hook, if set, installs a new one);
//   - its own connection ends come back in ConnError with no access, so it
//     must Reset each one, which is what a fresh bootstrap does;
//   - every peer's end towards it goes to ConnError at once (the bootstrap
//     channel tells peers their old queue pairs are gone): outstanding
//     requests there complete with StatusFlushed and the peer must Reset.
func (w *World) Restart(id rdma.NodeID) {
	n := w.mustNode(id)
	if !n.crashed {
		return
	}
	n.crashed = false
	n.paused = false
	n.stepper = nil
	n.busyUntilNs = w.now
	if !n.keepMemory {
		clear(n.region)
	}
	n.forEachEnd(func(e *connEnd) {
		e.drop()
		if e.state != rdma.ConnDown {
			e.state = rdma.ConnError
		}
		e.access = rdma.AccessNone
		e.peerEnd.toError()
	})
	if w.tracing {
		w.traceFault("restart", id, id, 0)
	}
	if w.onRestart != nil {
		w.onRestart(id)
	}
}

// Pause stops stepping the node (a gray failure: a stalled process, a long
// GC, a VM hiccup). Its NIC keeps serving reads and writes into its region
// and keeps delivering its completions.
func (w *World) Pause(id rdma.NodeID) {
	n := w.mustNode(id)
	n.paused = true
	if w.tracing {
		w.traceFault("pause", id, id, 0)
	}
}

// Resume undoes Pause and steps the node now.
func (w *World) Resume(id rdma.NodeID) {
	n := w.mustNode(id)
	if !n.paused {
		return
	}
	n.paused = false
	w.wake(n, w.now)
	if w.tracing {
		w.traceFault("resume", id, id, 0)
	}
}

// SetSlow multiplies the latency of every operation the node initiates or
// serves by factor (1 = normal): a fail-slow NIC, link or host.
func (w *World) SetSlow(id rdma.NodeID, factor float64) {
	if factor < 1 {
		panic(fmt.Sprintf("sim: SetSlow(%d, %v): factor must be >= 1", id, factor))
	}
	w.mustNode(id).slow = factor
	if w.tracing {
		w.traceFault("slow", id, id, int64(factor*1000))
	}
}

// SetLinkDelay adds extraNs plus a uniform jitter in [0, jitterNs) to every
// packet from -> to.
func (w *World) SetLinkDelay(from, to rdma.NodeID, extraNs, jitterNs int64) {
	if extraNs < 0 || jitterNs < 0 {
		panic("sim: SetLinkDelay: negative delay")
	}
	l := w.link(w.mustNode(from), w.mustNode(to))
	l.extraNs, l.jitterNs = extraNs, jitterNs
	if w.tracing {
		w.traceFault("delay", from, to, extraNs)
	}
}

// SetLoss makes each packet from -> to lost with probability p. As on a
// reliable connection, loss costs retransmissions (RetransmitIntervalNs
// each), not data; a request unanswered for TransportTimeoutNs fails with
// retry exceeded.
func (w *World) SetLoss(from, to rdma.NodeID, p float64) {
	if p < 0 || p > 1 {
		panic("sim: SetLoss: probability outside [0,1]")
	}
	w.link(w.mustNode(from), w.mustNode(to)).lossProb = p
	if w.tracing {
		w.traceFault("loss", from, to, int64(p*1e6))
	}
}

// Cut drops every packet from -> to (an asymmetric partition).
func (w *World) Cut(from, to rdma.NodeID) {
	w.link(w.mustNode(from), w.mustNode(to)).cut = true
	if w.tracing {
		w.traceFault("cut", from, to, 0)
	}
}

// CutBoth cuts a <-> b in both directions; other links are untouched, so
// two nodes can lose each other while both still reach a third (partial
// connectivity).
func (w *World) CutBoth(a, b rdma.NodeID) {
	w.Cut(a, b)
	w.Cut(b, a)
}

// Heal restores from -> to (not cleared: delay and loss).
func (w *World) Heal(from, to rdma.NodeID) {
	w.link(w.mustNode(from), w.mustNode(to)).cut = false
	if w.tracing {
		w.traceFault("heal", from, to, 0)
	}
}

// Partition cuts every link between nodes of different groups, both ways.
// Nodes in no group keep their links.
func (w *World) Partition(groups ...[]rdma.NodeID) {
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					w.CutBoth(a, b)
				}
			}
		}
	}
}

// HealNetwork removes every cut, delay, jitter and loss.
func (w *World) HealNetwork() {
	for i := range w.links {
		l := &w.links[i]
		l.cut, l.extraNs, l.jitterNs, l.lossProb = false, 0, 0, 0
	}
	if w.tracing {
		w.traceFault("healnet", 0, 0, 0)
	}
}

// ClearFaults heals the network, resumes paused nodes and un-slows every
// node. Crashed nodes stay crashed (Restart them explicitly).
func (w *World) ClearFaults() {
	w.HealNetwork()
	for _, n := range w.nodes {
		n.slow = 1
		if n.paused {
			w.Resume(n.id)
		}
	}
}

// FlipBit inverts one bit of a node's region (an undetected memory error).
func (w *World) FlipBit(id rdma.NodeID, byteOffset int, bit uint8) {
	n := w.mustNode(id)
	n.region[byteOffset] ^= 1 << (bit & 7)
	if w.tracing {
		w.traceFault("flip", id, id, int64(byteOffset)*8+int64(bit&7))
	}
}

// Connected reports whether packets currently flow both ways between a and b
// (both alive, neither direction cut; loss is not a cut).
func (w *World) Connected(a, b rdma.NodeID) bool {
	na, nb := w.mustNode(a), w.mustNode(b)
	return !na.crashed && !nb.crashed && !w.link(na, nb).cut && !w.link(nb, na).cut
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
