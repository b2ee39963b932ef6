package sim

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

// The swarm workload: every node posts a stream of writes, reads and
// compare-and-swaps to its peers on both planes, revokes and re-grants write
// permission now and then, and resets every connection it finds in error.
// The harness checks the fabric's promises under a random fault plan, then
// checks that after the faults end every connection carries traffic again.
//
// Region layout of every node:
//
//	[0, 512)      one 8-byte word per (writer, plane) that writer bumps
//	[1024, 1032)  a counter the peers increment by compare-and-swap
//	[2048, 3072)  the node's own staging slots, one per outstanding request
//	[4096, 8192)  junk that bit flips may hit
//	[8192, 24576) one 2 KiB block per (writer, plane), its last word a canary
//	[24576, 32768) the node's four staging blocks for block writes
const (
	swNodes     = 3
	swRegion    = 32768
	swBlocks    = 8192
	swBlockLen  = 2048 // two packets at the default MTU
	swStaging   = 24576
	swStageN    = 4
	swCounter   = 1024
	swSlots     = 2048
	swMaxOut    = 128
	swFlipLo    = 4096
	swFlipHi    = 8192
	swPostEvery = 40_000 // mean ns between posts
)

func blockOff(writer rdma.NodeID, p rdma.Plane) uint64 {
	return swBlocks + (uint64(writer)*2+uint64(p))*swBlockLen
}

func wordOff(writer rdma.NodeID, p rdma.Plane) uint64 {
	return uint64(writer)*16 + uint64(p)*8
}

type swRec struct {
	live   bool
	op     rdma.Op
	peer   rdma.NodeID
	tgtInc uint64 // target's incarnation when posted
	val    uint64 // write: value written; read: target's value at post; cas: compare
	block  int    // block write: staging block, else -1
}

type swHarness struct {
	t     *testing.T
	w     *World
	inc   [swNodes + 1]uint64 // incarnation: bumped on restart
	nodes [swNodes + 1]*swNode
	endNs int64 // faults stop
	// per (target, incarnation) compare-and-swap bookkeeping
	casPosted, casKnown, casWins [swNodes + 1]uint64
	casBase                      [swNodes + 1]uint64 // counter when the incarnation began
	// successes per directed connection since the liveness window opened
	windowNs int64
	live     [swNodes + 1][swNodes + 1][rdma.NumPlanes]int
	ops      int
	statuses [rdma.StatusLocalError + 1]int
}

type swNode struct {
	h       *swHarness
	n       *Node
	id      rdma.NodeID
	inc     uint64
	rng     *rand.Rand
	seq     uint64
	rr      int
	recs    [swMaxOut]swRec
	out     int
	nextAt  int64
	guess   [swNodes + 1]uint64 // last known counter value per peer
	seen    [swNodes + 1][rdma.NumPlanes]uint64
	revoked [swNodes + 1]int64 // replication write revoked from peer until
	staged  [swStageN]bool     // staging block in use
	cq      [32]rdma.Completion
	wr      [1]rdma.WorkRequest
}

func (h *swHarness) fail(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("t=%d: "+format, append([]any{h.w.Now()}, args...)...)
}

func (h *swHarness) newNode(id rdma.NodeID) *swNode {
	s := &swNode{h: h, n: h.w.Node(id), id: id, inc: h.inc[id], rng: h.w.Rand(uint64(id)<<32 | h.inc[id])}
	// A node that kept its memory sees its old words again; start from them.
	for p := rdma.Plane(0); p < rdma.NumPlanes; p++ {
		for w := rdma.NodeID(1); w <= swNodes; w++ {
			s.seen[w][p] = binary.LittleEndian.Uint64(s.n.Bytes()[wordOff(w, p):])
		}
	}
	h.nodes[id] = s
	return s
}

func (s *swNode) wantAccess(peer rdma.NodeID, p rdma.Plane, now int64) rdma.Access {
	if p == rdma.PlaneReplication && now < s.revoked[peer] {
		return rdma.AccessRemoteRead | rdma.AccessRemoteAtomic
	}
	return rdma.AccessAll
}

func (s *swNode) Step(now int64) int64 {
	h := s.h
	mem := s.n.Bytes()
	// Words written into my region only grow (per writer and plane).
	for p := rdma.Plane(0); p < rdma.NumPlanes; p++ {
		for w := rdma.NodeID(1); w <= swNodes; w++ {
			v := binary.LittleEndian.Uint64(mem[wordOff(w, p):])
			if v < s.seen[w][p] {
				h.fail("node %d: word of writer %d on %v went back from %#x to %#x", s.id, w, p, s.seen[w][p], v)
			}
			s.seen[w][p] = v
			// Packets land in address order: once the canary (last word)
			// reads c, no word of the block is older than c.
			b := mem[blockOff(w, p) : blockOff(w, p)+swBlockLen]
			c := binary.LittleEndian.Uint64(b[swBlockLen-8:])
			for i := 0; i < swBlockLen; i += 8 {
				if x := binary.LittleEndian.Uint64(b[i:]); x < c {
					h.fail("node %d: block of writer %d on %v has word %d = %#x older than its canary %#x", s.id, w, p, i/8, x, c)
				}
			}
		}
	}
	for {
		k := s.n.Poll(s.cq[:])
		for _, c := range s.cq[:k] {
			s.complete(c)
		}
		if k < len(s.cq) {
			break
		}
	}
	// Reset what broke; end revocations; sometimes start one.
	for peer := rdma.NodeID(1); peer <= swNodes; peer++ {
		if peer == s.id {
			continue
		}
		for p := rdma.Plane(0); p < rdma.NumPlanes; p++ {
			c := s.n.Conn(peer, p)
			want := s.wantAccess(peer, p, now)
			switch {
			case c.State() == rdma.ConnError:
				if err := c.Reset(want); err != nil {
					h.fail("reset: %v", err)
				}
			case c.RemoteAccess() != want:
				if err := c.SetRemoteAccess(want); err != nil {
					h.fail("set access: %v", err)
				}
			}
		}
	}
	if now < s.nextAt {
		return s.nextAt
	}
	s.nextAt = now + 1 + int64(s.rng.ExpFloat64()*swPostEvery)
	if now < h.endNs && s.rng.IntN(50) == 0 {
		peer := rdma.NodeID(1 + s.rng.IntN(swNodes))
		if peer != s.id {
			s.revoked[peer] = now + 100_000 + s.rng.Int64N(400_000)
		}
	}
	s.post()
	return s.nextAt
}

func (s *swNode) post() {
	h := s.h
	slot := s.seq % swMaxOut
	if s.recs[slot].live {
		return // staging slot still in use: too much outstanding
	}
	// Round-robin over (peer, plane) so every connection sees traffic.
	s.rr = (s.rr + 1) % ((swNodes - 1) * int(rdma.NumPlanes))
	peer := rdma.NodeID(1 + s.rr/int(rdma.NumPlanes))
	if peer >= s.id {
		peer++
	}
	plane := rdma.Plane(s.rr % int(rdma.NumPlanes))
	c := s.n.Conn(peer, plane)
	if c.State() != rdma.ConnReady {
		return
	}
	target := h.w.Node(peer).Bytes()
	local := uint64(swSlots) + slot*8
	r := swRec{live: true, peer: peer, tgtInc: h.inc[peer], block: -1}
	wr := rdma.WorkRequest{ID: uint64(s.id)<<56 | s.seq, LocalOffset: local, Length: 8}
	free := -1
	for i, busy := range s.staged {
		if !busy {
			free = i
		}
	}
	switch x := s.rng.IntN(12); {
	case x < 2 && free >= 0:
		r.op = rdma.OpWrite
		r.val = s.inc<<40 | s.seq
		r.block = free
		s.staged[free] = true
		stage := s.n.Bytes()[swStaging+free*swBlockLen : swStaging+(free+1)*swBlockLen]
		for i := 0; i < swBlockLen; i += 8 {
			binary.LittleEndian.PutUint64(stage[i:], r.val)
		}
		wr.LocalOffset = uint64(swStaging + free*swBlockLen)
		wr.RemoteOffset = blockOff(s.id, plane)
		wr.Length = swBlockLen
	case x < 7:
		r.op = rdma.OpWrite
		r.val = s.inc<<40 | s.seq
		binary.LittleEndian.PutUint64(s.n.Bytes()[local:], r.val)
		wr.RemoteOffset = wordOff(s.id, plane)
	case x < 10:
		r.op = rdma.OpRead
		w := rdma.NodeID(1 + s.rng.IntN(swNodes))
		wr.RemoteOffset = wordOff(w, rdma.Plane(s.rng.IntN(int(rdma.NumPlanes))))
		r.val = binary.LittleEndian.Uint64(target[wr.RemoteOffset:])
	default:
		r.op = rdma.OpCompareSwap
		wr.RemoteOffset = swCounter
		r.val = s.guess[peer]
		wr.Compare, wr.Swap = r.val, r.val+1
		h.casPosted[peer]++
	}
	wr.Op = r.op
	s.wr[0] = wr
	if n, err := c.Post(s.wr[:]); err != nil || n != 1 {
		h.fail("node %d: post: %d %v", s.id, n, err)
	}
	s.recs[slot] = r
	s.seq++
	s.out++
	h.ops++
}

func (s *swNode) complete(c rdma.Completion) {
	h := s.h
	if rdma.NodeID(c.ID>>56) != s.id {
		h.fail("node %d got completion for someone else: %+v", s.id, c)
	}
	seq := c.ID & (1<<56 - 1)
	slot := seq % swMaxOut
	r := &s.recs[slot]
	if !r.live || r.peer != c.Peer || r.op != c.Op {
		h.fail("node %d: completion %+v matches no outstanding request (%+v)", s.id, c, *r)
	}
	r.live = false
	s.out--
	if r.block >= 0 {
		s.staged[r.block] = false
	}
	sameTarget := h.inc[r.peer] == r.tgtInc && !h.w.Node(r.peer).Crashed()
	local := binary.LittleEndian.Uint64(s.n.Bytes()[uint64(swSlots)+slot*8:])
	h.statuses[c.Status]++
	if c.Status != rdma.StatusSuccess {
		return
	}
	if h.w.Now() >= h.windowNs {
		h.live[s.id][c.Peer][c.Plane]++
	}
	target := h.w.Node(r.peer).Bytes()
	switch c.Op {
	case rdma.OpWrite:
		off := wordOff(s.id, c.Plane)
		if r.block >= 0 {
			off = blockOff(s.id, c.Plane) + swBlockLen - 8
		}
		if sameTarget {
			if v := binary.LittleEndian.Uint64(target[off:]); v < r.val {
				h.fail("write %#x to %d completed but the target holds %#x", r.val, r.peer, v)
			}
		}
	case rdma.OpRead:
		if sameTarget && local < r.val {
			h.fail("read from %d returned %#x, below %#x it held when posted", r.peer, local, r.val)
		}
	case rdma.OpCompareSwap:
		if r.tgtInc == h.inc[r.peer] {
			h.casKnown[r.peer]++
			if local == r.val {
				h.casWins[r.peer]++
				s.guess[r.peer] = r.val + 1
			} else {
				s.guess[r.peer] = local
			}
		}
	}
}

type swarmResult struct {
	plan     Plan
	trace    []byte
	ops      int
	statuses [rdma.StatusLocalError + 1]int
}

func runSwarm(t *testing.T, seed uint64, trace bool) swarmResult {
	cfg := DefaultConfig().WithTransportTimeout(200_000)
	cfg.Trace = trace
	w := New(seed, cfg)
	ids := make([]rdma.NodeID, swNodes)
	for i := range ids {
		ids[i] = rdma.NodeID(i + 1)
		w.AddNode(ids[i], swRegion)
	}
	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll})
	const faultsEnd, quiet, window = 4_000_000, 6_000_000, 2_000_000
	h := &swHarness{t: t, w: w, endNs: faultsEnd, windowNs: faultsEnd + quiet - window}
	plan := Swarm(w.Rand(1), SwarmOptions{
		Nodes: ids, StartNs: 100_000, EndNs: faultsEnd, MaxFaults: 12,
		KeepMajority: w.Rand(2).IntN(2) == 0, AllowMemoryLoss: true, RestartAtEnd: true,
		FlipLo: swFlipLo, FlipHi: swFlipHi,
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fault plan:\n%v", plan)
		}
	})
	plan.Apply(w)
	w.SetRestartHook(func(id rdma.NodeID) {
		h.inc[id]++
		h.casPosted[id], h.casKnown[id], h.casWins[id] = 0, 0, 0
		h.casBase[id] = binary.LittleEndian.Uint64(w.Node(id).Bytes()[swCounter:])
		w.SetStepper(id, h.newNode(id))
	})
	for _, id := range ids {
		w.SetStepper(id, h.newNode(id))
	}
	w.Run(faultsEnd + quiet)

	// Compare-and-swap is atomic: the counter counts exactly the wins, plus
	// some of the swaps whose outcome the initiator never learned.
	for _, id := range ids {
		v := binary.LittleEndian.Uint64(w.Node(id).Bytes()[swCounter:]) - h.casBase[id]
		unknown := h.casPosted[id] - h.casKnown[id]
		if v < h.casWins[id] || v > h.casWins[id]+unknown {
			t.Fatalf("node %d counter %d: %d swaps won, %d outcomes unknown", id, v, h.casWins[id], unknown)
		}
	}
	// Liveness: once faults stop, every connection carries traffic again.
	for _, a := range ids {
		for _, b := range ids {
			for p := rdma.Plane(0); p < rdma.NumPlanes; p++ {
				if a != b && h.live[a][b][p] == 0 {
					t.Fatalf("no successful request %d->%d on %v in the last %d ns after faults ended", a, b, p, window)
				}
			}
		}
	}
	return swarmResult{plan: plan, trace: w.Trace(), ops: h.ops, statuses: h.statuses}
}

func TestSwarm1000Seeds(t *testing.T) {
	start := time.Now()
	ops, seeds := 0, 0
	var statuses [rdma.StatusLocalError + 1]int
	n := 1000
	if raceEnabled {
		n = 50
	}
	Seeds(t, n, func(t *testing.T, seed uint64) {
		r := runSwarm(t, seed, false)
		seeds++
		ops += r.ops
		for i, n := range r.statuses {
			statuses[i] += n
		}
	})
	t.Logf("%d seeds, %d ops in %v; completions by status: %v", seeds, ops, time.Since(start), statuses)
	if seeds < 50 {
		return // a replay of a few seeds need not cover every path
	}
	// Over a full sweep the faults must exercise every failure path.
	for _, st := range []rdma.Status{rdma.StatusSuccess, rdma.StatusRemoteInvalidRequest, rdma.StatusRetryExceeded, rdma.StatusFlushed} {
		if statuses[st] == 0 && !t.Failed() {
			t.Errorf("no %v completion in the whole sweep", st)
		}
	}
}

func TestTraceDeterministic(t *testing.T) {
	Seeds(t, 5, func(t *testing.T, seed uint64) {
		a := runSwarm(t, seed, true)
		b := runSwarm(t, seed, true)
		if len(a.trace) < 10_000 {
			t.Fatalf("trace only %d bytes", len(a.trace))
		}
		if !bytes.Equal(a.trace, b.trace) {
			i := 0
			for i < len(a.trace) && i < len(b.trace) && a.trace[i] == b.trace[i] {
				i++
			}
			t.Fatalf("same seed, different traces from byte %d: %q vs %q", i, snippet(a.trace, i), snippet(b.trace, i))
		}
		c := runSwarm(t, seed+1_000_000, true)
		if bytes.Equal(a.trace, c.trace) {
			t.Fatal("different seeds gave identical traces")
		}
	})
}

func snippet(b []byte, i int) string {
	return string(b[max(i-80, 0):min(i+80, len(b))])
}
