package sim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/rdmaconsensus/mu/rdma"
)

// NoWake is what a Stepper returns when it has no timer of its own: it is
// stepped again only when a completion or a remote write reaches it.
const NoWake int64 = math.MaxInt64

// Stepper is a driven node: the world calls Step at the time it asked for,
// whenever a completion for it is queued, and whenever a remote write or
// compare-and-swap lands in its region. Step returns the absolute virtual
// time at which it next wants to run (NoWake for none). A value not after
// the node's clock is treated as "one nanosecond later".
type Stepper interface {
	Step(nowNs int64) (nextWakeNs int64)
}

type evKind uint8

const (
	evStep evKind = iota
	evLand
	evComplete
	evFunc
)

// event is one entry of the discrete-event heap, ordered by (at, seq).
type event struct {
	at   int64
	seq  uint64
	kind evKind
	gen  uint32
	node *Node
	end  *connEnd
	fn   func()
}

// World is a deterministic simulated cluster: one goroutine (the caller of
// Run/RunUntil) processes an event heap in virtual time. Nothing in it reads
// the wall clock, iterates a map, or selects on channels, so a seed and the
// same sequence of calls reproduce every event.
type World struct {
	seed uint64
	cfg  Config
	now  int64
	seq  uint64
	heap []event

	rng   *rand.Rand // fabric randomness: latencies, loss
	nodes []*Node    // in AddNode order
	byID  []*Node    // indexed by NodeID
	links []link     // directed, [from.idx*maxNodes + to.idx]

	trace    []byte
	tracing  bool
	events   uint64
	stepping *Node // node whose Step is running, if any

	onRestart  func(rdma.NodeID)
	afterEvent func()
}

// maxNodes bounds the directed link table; mu clusters have 3-7 replicas.
const maxNodes = 16

// link is the directed path from one node to another.
type link struct {
	cut         bool
	extraNs     int64
	jitterNs    int64
	lossProb    float64
	busyUntilNs int64 // serialisation: when the link is free again
}

// New returns an empty world whose randomness all derives from seed. It
// panics if cfg is invalid (a test bug); call cfg.Validate to check first.
func New(seed uint64, cfg Config) *World {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	w := &World{
		seed:    seed,
		cfg:     cfg,
		tracing: cfg.Trace,
		links:   make([]link, maxNodes*maxNodes),
	}
	w.rng = w.Rand(0)
	return w
}

// Seed is the world's seed.
func (w *World) Seed() uint64 { return w.seed }

// Config is the world's configuration.
func (w *World) Config() Config { return w.cfg }

// Now is the virtual time in nanoseconds.
func (w *World) Now() int64 { return w.now }

// Events is the number of events processed so far.
func (w *World) Events() uint64 { return w.events }

// Rand returns a PRNG for a named stream derived from the world's seed. The
// same (seed, stream) always yields the same sequence, whatever else the
// world did, so adding randomness to one component does not shift another's.
// Stream 0 is the fabric's own.
func (w *World) Rand(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(w.seed, mix64(stream^0x9e3779b97f4a7c15)))
}

// mix64 is SplitMix64's finaliser.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// AddNode adds a node with a zeroed region of regionBytes. IDs must be
// unique and below 65536; at most 16 nodes.
func (w *World) AddNode(id rdma.NodeID, regionBytes int) *Node {
	if regionBytes <= 0 {
		panic(fmt.Sprintf("sim: AddNode(%d): regionBytes %d must be > 0", id, regionBytes))
	}
	if len(w.nodes) == maxNodes {
		panic(fmt.Sprintf("sim: AddNode(%d): at most %d nodes", id, maxNodes))
	}
	if int(id) < len(w.byID) && w.byID[id] != nil {
		panic(fmt.Sprintf("sim: AddNode(%d): duplicate id", id))
	}
	n := &Node{
		w:      w,
		id:     id,
		idx:    len(w.nodes),
		region: make([]byte, regionBytes),
		stepAt: NoWake,
		slow:   1,
	}
	n.reg.b = n.region
	w.nodes = append(w.nodes, n)
	for int(id) >= len(w.byID) {
		w.byID = append(w.byID, nil)
	}
	w.byID[id] = n
	return n
}

// Node returns the node with id, or nil.
func (w *World) Node(id rdma.NodeID) *Node {
	if int(id) < len(w.byID) {
		return w.byID[id]
	}
	return nil
}

// Nodes returns the nodes in the order they were added.
func (w *World) Nodes() []*Node { return w.nodes }

func (w *World) mustNode(id rdma.NodeID) *Node {
	n := w.Node(id)
	if n == nil {
		panic(fmt.Sprintf("sim: no node %d", id))
	}
	return n
}

// Connect builds the connection between a and b on plane: a's end lets b do
// accessA to a's region, b's end lets a do accessB. Both ends start Ready.
func (w *World) Connect(a, b rdma.NodeID, plane rdma.Plane, accessA, accessB rdma.Access) {
	na, nb := w.mustNode(a), w.mustNode(b)
	if na == nb {
		panic(fmt.Sprintf("sim: Connect(%d, %d): a node does not connect to itself", a, b))
	}
	if plane >= rdma.NumPlanes {
		panic(fmt.Sprintf("sim: Connect: bad plane %d", plane))
	}
	if na.end(nb, plane) != nil {
		panic(fmt.Sprintf("sim: Connect(%d, %d, %v): already connected", a, b, plane))
	}
	ea, eb := w.newEnd(na, nb, plane, accessA), w.newEnd(nb, na, plane, accessB)
	ea.peerEnd, eb.peerEnd = eb, ea
	na.setEnd(nb, plane, ea)
	nb.setEnd(na, plane, eb)
}

// ConnectAll connects every pair of nodes on every plane; each end starts
// Ready and grants its peer initial[plane]. The consensus layer starts with
// AccessRemoteRead on the replication plane (no leader yet) and AccessAll on
// the background plane.
func (w *World) ConnectAll(initial [rdma.NumPlanes]rdma.Access) {
	for i, a := range w.nodes {
		for _, b := range w.nodes[i+1:] {
			for p := rdma.Plane(0); p < rdma.NumPlanes; p++ {
				w.Connect(a.id, b.id, p, initial[p], initial[p])
			}
		}
	}
}

// SetStepper installs the node's driver and steps it at the current time.
// Installing nil stops stepping it.
func (w *World) SetStepper(id rdma.NodeID, s Stepper) {
	n := w.mustNode(id)
	n.stepper = s
	if s != nil {
		w.wake(n, w.now)
	}
}

// Schedule runs fn at virtual time at (now, if at is in the past), after
// every event already scheduled for that time. For clients and test events.
func (w *World) Schedule(at int64, fn func()) {
	w.push(event{at: max(at, w.now), kind: evFunc, fn: fn})
}

// SetEventHook sets fn to run after every event the world processes (a
// node's Step, a packet landing, a completion, a scheduled function), so a
// test can check invariants that must hold at every instant instead of at
// its own checkpoints. fn runs on the world's goroutine; nil removes it.
func (w *World) SetEventHook(fn func()) { w.afterEvent = fn }

// Run processes events until virtual time untilNs, then sets the clock to
// untilNs.
func (w *World) Run(untilNs int64) {
	for len(w.heap) > 0 && w.heap[0].at <= untilNs {
		w.processOne()
	}
	if untilNs > w.now {
		w.now = untilNs
	}
}

// RunFor is Run(Now()+durationNs).
func (w *World) RunFor(durationNs int64) { w.Run(w.now + durationNs) }

// RunUntil processes events until pred returns true (checked before the
// first event and after each one) or virtual time would pass limitNs. It
// returns pred's last value; on false the clock is left at limitNs.
func (w *World) RunUntil(pred func() bool, limitNs int64) bool {
	for {
		if pred() {
			return true
		}
		if len(w.heap) == 0 || w.heap[0].at > limitNs {
			if limitNs > w.now {
				w.now = limitNs
			}
			return pred()
		}
		w.processOne()
	}
}

// Pending is the number of events in the heap (stale ones included).
func (w *World) Pending() int { return len(w.heap) }

func (w *World) processOne() {
	ev := w.pop()
	if ev.at < w.now {
		panic("sim: event in the past")
	}
	w.now = ev.at
	w.events++
	switch ev.kind {
	case evStep:
		w.runStep(ev)
	case evLand:
		ev.end.onLand(ev.gen)
	case evComplete:
		ev.end.onComplete(ev.gen)
	case evFunc:
		ev.fn()
	}
	if w.afterEvent != nil {
		w.afterEvent()
	}
}

// wake asks for n to be stepped at time at unless it already will be by then.
func (w *World) wake(n *Node, at int64) {
	if at < w.now {
		at = w.now
	}
	if at >= n.stepAt {
		return
	}
	n.stepAt = at
	w.push(event{at: at, kind: evStep, node: n})
}

func (w *World) runStep(ev event) {
	n := ev.node
	if ev.at != n.stepAt {
		return // superseded by an earlier wake
	}
	n.stepAt = NoWake
	if n.crashed || n.paused || n.stepper == nil {
		return
	}
	if n.busyUntilNs > w.now {
		w.wake(n, n.busyUntilNs)
		return
	}
	if w.tracing {
		w.traceNode("step", n)
	}
	w.stepping = n
	next := n.stepper.Step(w.now)
	w.stepping = nil
	if floor := n.Now() + 1; next < floor {
		next = floor
	}
	if next != NoWake {
		w.wake(n, next)
	}
}

// push and pop keep w.heap a binary min-heap on (at, seq) without the
// interface boxing of container/heap.
func (w *World) push(ev event) {
	w.seq++
	ev.seq = w.seq
	h := append(w.heap, ev)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !evLess(&h[i], &h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	w.heap = h
}

func (w *World) pop() event {
	h := w.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = event{}
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && evLess(&h[r], &h[l]) {
			m = r
		}
		if !evLess(&h[m], &h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	w.heap = h
	return top
}

func evLess(a, b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

func (w *World) link(from, to *Node) *link { return &w.links[from.idx*maxNodes+to.idx] }

// pathUp: a packet from -> to gets through now (both NICs alive, not cut,
// not lost).
func (w *World) pathUp(from, to *Node) bool {
	if from.crashed || to.crashed {
		return false
	}
	l := w.link(from, to)
	if l.cut {
		return false
	}
	return l.lossProb == 0 || w.rng.Float64() >= l.lossProb
}

// legNs samples one leg from -> to carrying payloadBytes, including link
// faults, slowness and serialisation behind earlier payloads from departNs.
func (w *World) legNs(lat *Latency, from, to *Node, departNs int64, payloadBytes uint32) int64 {
	l := w.link(from, to)
	d := lat.sample(w.rng)
	if f := max(from.slow, to.slow); f != 1 {
		d = int64(float64(d) * f)
	}
	d += l.extraNs
	if l.jitterNs > 0 {
		d += w.rng.Int64N(l.jitterNs)
	}
	if payloadBytes > 0 {
		start := max(departNs, l.busyUntilNs)
		l.busyUntilNs = start + w.serialNs(payloadBytes)
		d += l.busyUntilNs - departNs
	}
	return departNs + d
}

// serialNs is the time to put bytes on a link, at least 1 ns.
func (w *World) serialNs(bytes uint32) int64 {
	return max(int64(bytes)*1_000_000_000/w.cfg.BandwidthBytesPerSec, 1)
}
