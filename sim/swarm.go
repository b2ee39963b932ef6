package sim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/rdmaconsensus/mu/rdma"
)

// FaultKind is one kind of injected fault.
type FaultKind uint8

const (
	FaultCrash           FaultKind = iota + 1 // crash A; region zeroed on restart
	FaultCrashKeepMemory                      // crash A; region survives
	FaultRestart                              // restart A
	FaultPause                                // stop stepping A
	FaultResume                               // resume A
	FaultSlow                                 // A's operations take Factor times longer
	FaultLinkDelay                            // A->B gets DelayNs + jitter JitterNs
	FaultLoss                                 // A->B loses packets with probability Factor
	FaultCut                                  // cut A->B only (asymmetric)
	FaultCutBoth                              // cut A<->B (partial connectivity)
	FaultPartition                            // Group vs everyone else
	FaultHealNetwork                          // remove every cut, delay and loss
	FaultFlipBit                              // flip bit Bit of A's region byte Offset
	FaultClear                                // heal network, resume all, un-slow all
	FaultHeal                                 // restore A->B (delay and loss stay)
)

var faultNames = [...]string{
	FaultCrash: "crash", FaultCrashKeepMemory: "crash-keep-memory", FaultRestart: "restart",
	FaultPause: "pause", FaultResume: "resume", FaultSlow: "slow", FaultLinkDelay: "link-delay",
	FaultLoss: "loss", FaultCut: "cut", FaultCutBoth: "cut-both", FaultPartition: "partition",
	FaultHealNetwork: "heal-network", FaultFlipBit: "flip-bit", FaultClear: "clear",
	FaultHeal: "heal",
}

func (k FaultKind) String() string {
	if int(k) < len(faultNames) && faultNames[k] != "" {
		return faultNames[k]
	}
	return "fault(" + strconv.Itoa(int(k)) + ")"
}

// Fault is one scheduled fault.
type Fault struct {
	AtNs     int64
	Kind     FaultKind
	A, B     rdma.NodeID
	Factor   float64 // FaultSlow: latency factor; FaultLoss: probability
	DelayNs  int64   // FaultLinkDelay
	JitterNs int64   // FaultLinkDelay
	Offset   int     // FaultFlipBit
	Bit      uint8   // FaultFlipBit
	Group    []rdma.NodeID
}

func (f Fault) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %v", f.AtNs, f.Kind)
	switch f.Kind {
	case FaultHealNetwork, FaultClear:
	case FaultPartition:
		fmt.Fprintf(&b, " %v", f.Group)
	case FaultLinkDelay:
		fmt.Fprintf(&b, " %d->%d +%dns ~%dns", f.A, f.B, f.DelayNs, f.JitterNs)
	case FaultLoss:
		fmt.Fprintf(&b, " %d->%d p=%.3f", f.A, f.B, f.Factor)
	case FaultCut, FaultCutBoth, FaultHeal:
		fmt.Fprintf(&b, " %d->%d", f.A, f.B)
	case FaultSlow:
		fmt.Fprintf(&b, " %d x%.1f", f.A, f.Factor)
	case FaultFlipBit:
		fmt.Fprintf(&b, " %d byte %d bit %d", f.A, f.Offset, f.Bit)
	default:
		fmt.Fprintf(&b, " %d", f.A)
	}
	return b.String()
}

// Apply performs the fault on w now.
func (f Fault) Apply(w *World) {
	switch f.Kind {
	case FaultCrash:
		w.Crash(f.A, false)
	case FaultCrashKeepMemory:
		w.Crash(f.A, true)
	case FaultRestart:
		w.Restart(f.A)
	case FaultPause:
		w.Pause(f.A)
	case FaultResume:
		w.Resume(f.A)
	case FaultSlow:
		w.SetSlow(f.A, f.Factor)
	case FaultLinkDelay:
		w.SetLinkDelay(f.A, f.B, f.DelayNs, f.JitterNs)
	case FaultLoss:
		w.SetLoss(f.A, f.B, f.Factor)
	case FaultCut:
		w.Cut(f.A, f.B)
	case FaultCutBoth:
		w.CutBoth(f.A, f.B)
	case FaultPartition:
		var rest []rdma.NodeID
		for _, n := range w.nodes {
			if !containsID(f.Group, n.id) {
				rest = append(rest, n.id)
			}
		}
		w.Partition(f.Group, rest)
	case FaultHealNetwork:
		w.HealNetwork()
	case FaultFlipBit:
		w.FlipBit(f.A, f.Offset, f.Bit)
	case FaultClear:
		w.ClearFaults()
	case FaultHeal:
		w.Heal(f.A, f.B)
	default:
		panic(fmt.Sprintf("sim: unknown fault kind %d", f.Kind))
	}
}

func containsID(ids []rdma.NodeID, id rdma.NodeID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// SwarmOptions bounds what Swarm may generate.
type SwarmOptions struct {
	Nodes []rdma.NodeID
	// Faults happen in [StartNs, EndNs). At EndNs every fault is cleared
	// (network healed, nodes resumed and un-slowed) and, with
	// RestartAtEnd, crashed nodes restart: from then on a test checks
	// liveness.
	StartNs, EndNs int64
	// MaxFaults caps the number of faults before EndNs.
	MaxFaults int
	// KeepMajority never lets more than a minority be crashed or paused at
	// once, so a majority-based protocol may be asked to stay safe and, once
	// faults end, live.
	KeepMajority bool
	// AllowMemoryLoss permits crashes that zero the region.
	AllowMemoryLoss bool
	// RestartAtEnd restarts every crashed node at EndNs.
	RestartAtEnd bool
	// FlipLo, FlipHi: bit flips hit region bytes in [FlipLo, FlipHi);
	// FlipHi <= FlipLo disables bit flips.
	FlipLo, FlipHi int
	// MaxDelayNs bounds added link delay and jitter (default 200 µs).
	MaxDelayNs int64
	// MaxSlowFactor bounds node slowness (default 20).
	MaxSlowFactor float64
	// MaxLoss bounds packet loss probability (default 0.2).
	MaxLoss float64
}

// Plan is a fault schedule drawn by Swarm.
type Plan struct {
	Faults []Fault
	// Kinds are the fault kinds this plan drew from (swarm testing: each
	// seed enables a random subset, so rare combinations get weight).
	Kinds []FaultKind
}

// String lists the faults, one per line, for failure reports.
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kinds %v\n", p.Kinds)
	for _, f := range p.Faults {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Apply schedules every fault on w.
func (p Plan) Apply(w *World) {
	for i := range p.Faults {
		f := p.Faults[i]
		w.Schedule(f.AtNs, func() { f.Apply(w) })
	}
}

// Swarm draws a random fault plan: first a random subset of fault kinds,
// then up to MaxFaults faults of those kinds at random times, respecting
// the options. The same rng state yields the same plan.
func Swarm(rng *rand.Rand, o SwarmOptions) Plan {
	if len(o.Nodes) < 2 || o.EndNs <= o.StartNs {
		panic("sim: Swarm needs two nodes and EndNs > StartNs")
	}
	if o.MaxDelayNs <= 0 {
		o.MaxDelayNs = 200_000
	}
	if o.MaxSlowFactor < 1 {
		o.MaxSlowFactor = 20
	}
	if o.MaxLoss <= 0 {
		o.MaxLoss = 0.2
	}
	candidates := []FaultKind{FaultCrashKeepMemory, FaultPause, FaultSlow, FaultLinkDelay, FaultLoss, FaultCut, FaultCutBoth, FaultPartition}
	if o.AllowMemoryLoss {
		candidates = append(candidates, FaultCrash)
	}
	if o.FlipHi > o.FlipLo {
		candidates = append(candidates, FaultFlipBit)
	}
	var p Plan
	for _, k := range candidates {
		if rng.IntN(2) == 0 {
			p.Kinds = append(p.Kinds, k)
		}
	}
	if len(p.Kinds) == 0 {
		p.Kinds = append(p.Kinds, candidates[rng.IntN(len(candidates))])
	}
	n := len(o.Nodes)
	down := map[rdma.NodeID]FaultKind{} // crashed or paused; looked up only
	var downOrder []rdma.NodeID         // for deterministic choice
	budget := n
	if o.KeepMajority {
		budget = (n - 1) / 2
	}
	count := 0
	if o.MaxFaults > 0 {
		count = 1 + rng.IntN(o.MaxFaults)
	}
	times := make([]int64, count)
	for i := range times {
		times[i] = o.StartNs + rng.Int64N(o.EndNs-o.StartNs)
	}
	sortInt64(times)
	pick := func() rdma.NodeID { return o.Nodes[rng.IntN(n)] }
	pair := func() (rdma.NodeID, rdma.NodeID) {
		i := rng.IntN(n)
		j := (i + 1 + rng.IntN(n-1)) % n
		return o.Nodes[i], o.Nodes[j]
	}
	for _, at := range times {
		// Bring a node back half of the time when some are down.
		if len(downOrder) > 0 && rng.IntN(2) == 0 {
			i := rng.IntN(len(downOrder))
			id := downOrder[i]
			kind := FaultResume
			if down[id] != FaultPause {
				kind = FaultRestart
			}
			p.Faults = append(p.Faults, Fault{AtNs: at, Kind: kind, A: id})
			delete(down, id)
			downOrder = append(downOrder[:i], downOrder[i+1:]...)
			continue
		}
		k := p.Kinds[rng.IntN(len(p.Kinds))]
		f := Fault{AtNs: at, Kind: k}
		switch k {
		case FaultCrash, FaultCrashKeepMemory, FaultPause:
			if len(downOrder) >= budget {
				continue
			}
			f.A = pick()
			if _, ok := down[f.A]; ok {
				continue
			}
			down[f.A] = k
			downOrder = append(downOrder, f.A)
		case FaultSlow:
			f.A = pick()
			f.Factor = 1 + rng.Float64()*(o.MaxSlowFactor-1)
		case FaultLinkDelay:
			f.A, f.B = pair()
			f.DelayNs = rng.Int64N(o.MaxDelayNs)
			f.JitterNs = rng.Int64N(o.MaxDelayNs)
		case FaultLoss:
			f.A, f.B = pair()
			f.Factor = rng.Float64() * o.MaxLoss
		case FaultCut, FaultCutBoth:
			f.A, f.B = pair()
		case FaultPartition:
			size := 1 + rng.IntN(n-1)
			perm := rng.Perm(n)
			for _, i := range perm[:size] {
				f.Group = append(f.Group, o.Nodes[i])
			}
		case FaultFlipBit:
			f.A = pick()
			f.Offset = o.FlipLo + rng.IntN(o.FlipHi-o.FlipLo)
			f.Bit = uint8(rng.IntN(8))
		}
		p.Faults = append(p.Faults, f)
		// Network faults heal on their own now and then, so several
		// shapes appear within one run.
		if k >= FaultLinkDelay && k <= FaultPartition && rng.IntN(3) == 0 {
			heal := at + rng.Int64N(o.EndNs-at)
			p.Faults = append(p.Faults, Fault{AtNs: heal, Kind: FaultHealNetwork})
		}
	}
	p.Faults = append(p.Faults, Fault{AtNs: o.EndNs, Kind: FaultClear})
	if o.RestartAtEnd {
		for _, id := range downOrder {
			if down[id] != FaultPause {
				p.Faults = append(p.Faults, Fault{AtNs: o.EndNs, Kind: FaultRestart, A: id})
			}
		}
	}
	sortFaults(p.Faults)
	return p
}

func sortInt64(a []int64) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// sortFaults orders by time, stably (insertion sort: plans are short).
func sortFaults(a []Fault) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].AtNs < a[j-1].AtNs; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
