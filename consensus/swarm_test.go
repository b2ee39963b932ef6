package consensus

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// kvInput and kvOutput are the porcupine view of a client operation.
type kvInput struct {
	put   bool
	key   uint8
	value uint64
}

type kvOutput struct {
	value   uint64
	unknown bool // the call never returned (or returned "outcome unknown")
}

var kvModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[uint8][]porcupine.Operation{}
		var keys []uint8
		for _, op := range h {
			k := op.Input.(kvInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return uint64(0) },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(uint64), input.(kvInput), output.(kvOutput)
		if in.put {
			return true, in.value
		}
		return out.unknown || out.value == st, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		res := fmt.Sprint(out.value)
		if out.unknown {
			res = "?"
		}
		if in.put {
			return fmt.Sprintf("put(%d, %d)", in.key, in.value)
		}
		return fmt.Sprintf("get(%d) -> %s", in.key, res)
	},
}

// swarmOpts selects the faults a run may inject (swarm testing: each seed
// enables a random subset, so rare combinations get exercised).
type swarmOpts struct {
	faultNs    int64 // how long faults are injected (virtual)
	livenessNs int64 // bound: after faults stop, a leader must commit within this
}

type clientOp struct {
	client   int
	in       kvInput
	op       uint64
	call     int64
	ret      int64
	out      kvOutput
	index    Index
	returned bool
	acked    bool
}

type swarm struct {
	t       *testing.T
	c       *cluster
	rng     *rand.Rand
	ops     []*clientOp
	pending map[uint64]*clientOp // token -> op awaiting a reply
	nextOp  uint64
	clients int
	stopped bool
	down    map[rdma.NodeID]bool // crashed
	faults  []string
}

func (s *swarm) issue(client int) {
	if s.stopped {
		return
	}
	c := s.c
	s.nextOp++
	op := &clientOp{client: client, op: s.nextOp, call: c.w.Now()}
	op.in = kvInput{put: s.rng.IntN(2) == 0, key: uint8(s.rng.IntN(4)), value: s.nextOp}
	// A client sends to the replica it believes leads; it learns that from
	// a NotLeaderError (here: any live replica's detector view).
	target := c.ids[s.rng.IntN(len(c.ids))]
	if l, ok := c.leader(); ok {
		target = l
	}
	var buf [kvCmdBytes]byte
	if c.w.Node(target).Crashed() {
		c.w.Schedule(c.w.Now()+20_000, func() { s.issue(client) })
		return
	}
	err := c.reps[target].Submit(encodeKV(buf[:], op.in.put, op.in.key, op.op, op.in.value), op.op)
	if err != nil {
		// Not written anywhere: not part of the history.
		c.w.Schedule(c.w.Now()+20_000, func() { s.issue(client) })
		return
	}
	s.ops = append(s.ops, op)
	s.pending[op.op] = op
	// A reply may never come (the replica crashed): the client gives up
	// after a while, leaving the outcome unknown, and moves on.
	c.w.Schedule(c.w.Now()+clientTimeoutNs, func() {
		if s.pending[op.op] == op {
			delete(s.pending, op.op)
			op.out.unknown = true
			s.issue(op.client)
		}
	})
}

const clientTimeoutNs = 5_000_000

func (s *swarm) onReply(node rdma.NodeID, token uint64, index Index, err error) {
	op := s.pending[token]
	if op == nil {
		return
	}
	delete(s.pending, token)
	now := s.c.w.Now()
	switch {
	case err == nil:
		op.returned, op.acked, op.ret, op.index = true, true, now, index
		v, ok := s.c.sms[node].outputs[op.op]
		if !ok {
			s.t.Errorf("node %d acknowledged op %d at index %d but did not apply it", node, op.op, index)
		}
		op.out = kvOutput{value: v}
	case isNotLeader(err):
		// Never written: drop it from the history.
		op.returned, op.ret = true, now
		op.out.unknown = true
		op.in.put = false // an unwritten op has no effect; model it as an unknown get
	default:
		// Outcome unknown: it may still commit. Leave it open (+inf).
		op.out.unknown = true
	}
	s.c.w.Schedule(now+int64(s.rng.IntN(30_000)), func() { s.issue(op.client) })
}

func isNotLeader(err error) bool {
	_, ok := err.(*NotLeaderError)
	return ok
}

// injectFault applies one random fault from the enabled set and schedules
// its repair. At most f replicas are crashed (or rejoining) at once: that
// is what the protocol claims to survive.
func (s *swarm) injectFault(enabled []string) {
	c, rng, w := s.c, s.rng, s.c.w
	n := len(c.ids)
	f := (n - 1) / 2
	kind := enabled[rng.IntN(len(enabled))]
	a := c.ids[rng.IntN(n)]
	b := c.ids[rng.IntN(n)]
	for b == a {
		b = c.ids[rng.IntN(n)]
	}
	dur := int64(200_000 + rng.IntN(3_000_000))
	now := w.Now()
	switch kind {
	case "crash":
		downs := 0
		for _, id := range c.ids {
			if s.down[id] || c.reps[id].rejoining {
				downs++
			}
		}
		if downs >= f || s.down[a] {
			return
		}
		s.down[a] = true
		w.Crash(a, false)
		w.Schedule(now+dur, func() { delete(s.down, a); w.Restart(a) })
	case "pause":
		w.Pause(a)
		w.Schedule(now+dur, func() { w.Resume(a) })
	case "slow":
		w.SetSlow(a, 2+rng.Float64()*20)
		w.Schedule(now+dur, func() { w.SetSlow(a, 1) })
	case "partition":
		perm := rng.Perm(n)
		cut := 1 + rng.IntN(n-1)
		var g1, g2 []rdma.NodeID
		for i, p := range perm {
			if i < cut {
				g1 = append(g1, c.ids[p])
			} else {
				g2 = append(g2, c.ids[p])
			}
		}
		w.Partition(g1, g2)
		w.Schedule(now+dur, func() { w.HealNetwork() })
	case "partial":
		w.CutBoth(a, b)
		w.Schedule(now+dur, func() { w.Heal(a, b); w.Heal(b, a) })
	case "oneway":
		w.Cut(a, b)
		w.Schedule(now+dur, func() { w.Heal(a, b) })
	case "delay":
		w.SetLinkDelay(a, b, int64(5_000+rng.IntN(200_000)), int64(rng.IntN(50_000)))
		w.Schedule(now+dur, func() { w.SetLinkDelay(a, b, 0, 0) })
	case "loss":
		w.SetLoss(a, b, 0.01+rng.Float64()*0.3)
		w.Schedule(now+dur, func() { w.SetLoss(a, b, 0) })
	}
	s.faults = append(s.faults, fmt.Sprintf("%d %s %d %d for %d", now, kind, a, b, dur))
}

var allFaults = []string{"crash", "pause", "slow", "partition", "partial", "oneway", "delay", "loss"}

// runSwarm is one seeded run: clients issue puts and gets while faults are
// injected; then faults stop and the cluster must recover.
func runSwarm(t *testing.T, seed uint64, o swarmOpts) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := 3
	if rng.IntN(3) == 0 {
		n = 5
	}
	c := newCluster(t, seed, n, nil)
	s := &swarm{t: t, c: c, rng: c.w.Rand(77), pending: map[uint64]*clientOp{}, clients: 3, down: map[rdma.NodeID]bool{}}
	c.onReply = s.onReply
	var enabled []string
	for _, f := range allFaults {
		if rng.IntN(2) == 0 {
			enabled = append(enabled, f)
		}
	}
	if len(enabled) == 0 {
		enabled = []string{allFaults[rng.IntN(len(allFaults))]}
	}
	fail := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("MU_TRACE") != "" {
			_ = os.WriteFile("/tmp/mu-trace.txt", c.w.Trace(), 0o644)
		}
		t.Errorf(format, args...)
		t.Logf("n=%d faults enabled %v; injected:\n%v\nleader changes:\n%v\nreplay: %s", n, enabled, s.faults, c.leaderLog, sim.ReplayCommand(t, seed))
		for _, id := range c.ids {
			t.Log(c.reps[id].debugString())
		}
		t.FailNow()
	}

	// Warm-up: the first leader.
	if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
		fail("no leader 20 ms after boot")
	}
	for i := 0; i < s.clients; i++ {
		s.issue(i)
	}
	start := c.w.Now()
	for c.w.Now() < start+o.faultNs {
		s.injectFault(enabled)
		c.w.RunFor(int64(500_000 + rng.IntN(2_500_000)))
		if len(c.violations) > 0 {
			fail("safety: %s", c.violations[0])
		}
	}
	// Faults stop: heal everything, restart the crashed.
	c.w.ClearFaults()
	c.w.HealNetwork()
	for id := range s.down {
		delete(s.down, id)
		c.w.Restart(id)
	}
	healAt := c.w.Now()
	for _, id := range c.ids {
		c.w.SetSlow(id, 1)
	}
	before := len(s.ops)
	// Liveness: a leader commits a client operation issued after the heal.
	if !c.w.RunUntil(func() bool {
		for _, op := range s.ops[before:] {
			if op.acked {
				return true
			}
		}
		return false
	}, healAt+o.livenessNs) {
		fail("no operation committed within %d ms of the faults stopping", o.livenessNs/1_000_000)
	}
	s.stopped = true
	// Convergence: every replica applies the same prefix.
	c.w.RunUntil(func() bool { return len(s.pending) == 0 }, c.w.Now()+5_000_000)
	var ldr rdma.NodeID
	if !c.w.RunUntil(func() bool { var ok bool; ldr, ok = c.leader(); return ok }, c.w.Now()+o.livenessNs) {
		fail("no leader within %d ms at the end", o.livenessNs/1_000_000)
	}
	if !c.w.RunUntil(func() bool {
		for _, id := range c.ids {
			if c.reps[id].AppliedIndex() != c.reps[ldr].AppliedIndex() {
				return false
			}
		}
		return true
	}, c.w.Now()+o.livenessNs) {
		fail("replicas did not converge within %d ms", o.livenessNs/1_000_000)
	}
	c.checkSafety()
	for _, id := range c.ids {
		if c.reps[id].Fenced() {
			fail("node %d fenced itself without corruption", id)
		}
		if fmt.Sprint(c.sms[id].data) != fmt.Sprint(c.sms[ldr].data) {
			fail("node %d state %v differs from leader %d state %v", id, c.sms[id].data, ldr, c.sms[ldr].data)
		}
	}
	// No acknowledged proposal lost: each acked op sits at its index.
	for _, op := range s.ops {
		if !op.acked {
			continue
		}
		found := false
		for _, cmd := range c.applied[op.index] {
			if binary.LittleEndian.Uint64(cmd[2:]) == op.op {
				found = true
			}
		}
		if !found {
			fail("acknowledged op %d at index %d is not in the log", op.op, op.index)
		}
	}
	checkLinearizable(t, seed, s.ops)
}

func checkLinearizable(t *testing.T, seed uint64, ops []*clientOp) {
	t.Helper()
	// An operation that never returned may take effect any time after its
	// call: it returns "at infinity", here after every other event (a
	// finite value keeps porcupine's time arithmetic clear of overflow).
	var end int64
	for _, op := range ops {
		end = max(end, op.call, op.ret)
	}
	hist := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		ret, out := op.ret, op.out
		if !op.returned {
			ret, out = end+1, kvOutput{unknown: true}
		}
		hist = append(hist, porcupine.Operation{ClientId: op.client, Input: op.in, Call: op.call, Output: out, Return: ret})
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel, hist, 10*time.Second)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		for _, part := range kvModel.Partition(hist) {
			if porcupine.CheckOperations(kvModel, part) {
				continue
			}
			slices.SortFunc(part, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
			lo, hi := 1, len(part) // smallest failing prefix
			for lo < hi {
				mid := (lo + hi) / 2
				if porcupine.CheckOperations(kvModel, part[:mid]) {
					lo = mid + 1
				} else {
					hi = mid
				}
			}
			t.Logf("key %d: %d ops not linearizable; shortest failing prefix %d", part[0].Input.(kvInput).key, len(part), lo)
			for i, op := range part[:lo] {
				if i < lo-25 {
					continue
				}
				t.Logf("  client %d call %d ret %d %s", op.ClientId, op.Call, op.Return, kvModel.DescribeOperation(op.Input, op.Output))
			}
			break
		}
		dir := filepath.Join("testdata-out")
		_ = os.MkdirAll(dir, 0o755)
		path := filepath.Join(dir, fmt.Sprintf("%s-seed-%d.html", filepath.Base(filepath.Dir(t.Name()+"/x")), seed))
		if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
			path = "(visualization failed: " + err.Error() + ")"
		}
		t.Fatalf("history of %d ops is not linearizable; visualization %s; replay: %s", len(hist), path, sim.ReplayCommand(t, seed))
	default:
		t.Logf("linearizability check timed out on %d ops", len(hist))
	}
}

// TestSwarmSafety2000Seeds: 2000 seeded runs of 3 or 5 replicas under a
// random subset of crash-restart (without memory), pause, slow node,
// partition, two-way and one-way link cuts, delay and loss, injected for
// 10 ms of virtual time while three clients issue puts and gets. Checked:
// no two replicas apply different commands at one index; every
// acknowledged proposal is in the log at its index; the client history is
// linearizable (porcupine); and once faults stop, a leader commits a new
// client operation within 60 ms and every replica converges to the same
// applied index and state within another 60 ms. Seeds run in parallel.
func TestSwarmSafety2000Seeds(t *testing.T) {
	sim.Seeds(t, 2000, func(t *testing.T, seed uint64) {
		t.Parallel()
		runSwarm(t, seed, swarmOpts{faultNs: 10_000_000, livenessNs: 60_000_000})
	})
}
