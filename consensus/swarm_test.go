package consensus

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// kvInput and kvOutput are the porcupine view of a client operation.
type kvInput struct {
	put   bool
	read  bool // a get served without the log (ReadIndex or the lease)
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
		if in.read {
			return fmt.Sprintf("read(%d) -> %s", in.key, res)
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
	node     rdma.NodeID // the replica that acknowledged it
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
	// damaged holds the replica processes whose memory a fault changed:
	// only they may fence themselves.
	damaged map[*Replica]bool
	// pad, when positive, appends up to pad-1 bytes to each command, so
	// slots span several writes.
	pad int
	cmd []byte
	// calm is set when faults stop: no armed fault fires after it.
	calm bool
	// reads: a third of the operations are reads without the log.
	reads                  bool
	leaseReads, indexReads int
	// transfers asked for and completed (the "transfer" kind)
	transfers, transferred int
	// members: the universe has learners and the "member" kind changes
	// voters; changes asked for and in force
	members             bool
	confAsked, confDone int
	// fail reports a violation seen while the run goes on (watch).
	fail func(format string, args ...any)
}

func newSwarm(t *testing.T, c *cluster) *swarm {
	s := &swarm{t: t, c: c, rng: c.w.Rand(77), pending: map[uint64]*clientOp{}, clients: 3,
		down: map[rdma.NodeID]bool{}, damaged: map[*Replica]bool{}}
	s.fail = func(format string, args ...any) { t.Helper(); t.Errorf(format, args...) }
	c.onReply = s.onReply
	c.onRead = s.onRead
	c.onTransfer = func(node, to rdma.NodeID, err error) {
		if err == nil {
			s.transferred++
		}
		s.faults = append(s.faults, fmt.Sprintf("%d transfer %d -> %d: %v", c.w.Now(), node, to, err))
	}
	c.onConf = func(node rdma.NodeID, gen uint64, err error) {
		if err == nil {
			s.confDone++
		}
		s.faults = append(s.faults, fmt.Sprintf("%d member change %d on %d: %v", c.w.Now(), gen, node, err))
	}
	return s
}

// watch checks the run as it goes and fails it through fail at the first
// violation: the cluster's invariants after every event (cluster.watch),
// an acknowledgement of an operation not applied at its index (onReply),
// and a fence of a replica whose memory no fault damaged.
func (s *swarm) watch(fail func(format string, args ...any)) {
	s.fail = fail
	s.c.watch(fail)
	s.c.onCorrupt = func(id rdma.NodeID) {
		if !s.damaged[s.c.reps[id]] {
			fail("node %d fenced itself although no fault damaged its memory", id)
		}
	}
}

func (s *swarm) issue(client int) {
	if s.stopped {
		return
	}
	c := s.c
	s.nextOp++
	op := &clientOp{client: client, op: s.nextOp, call: c.w.Now()}
	kind := s.rng.IntN(3)
	op.in = kvInput{put: kind == 0, read: kind == 2 && s.reads, key: uint8(s.rng.IntN(4)), value: s.nextOp}
	// A client sends to the replica it believes leads; it learns that from
	// a NotLeaderError (here: any live replica's detector view). While a
	// deposed leader still believes it leads, clients reach either one.
	target := c.ids[s.rng.IntN(len(c.ids))]
	if ls := c.leaders(); len(ls) > 0 {
		target = ls[s.rng.IntN(len(ls))]
	}
	if c.w.Node(target).Crashed() {
		c.w.Schedule(c.w.Now()+20_000, func() { s.issue(client) })
		return
	}
	if op.in.read {
		s.read(op, target)
		return
	}
	n := kvCmdBytes
	if s.pad > 0 {
		n += s.rng.IntN(s.pad)
	}
	if len(s.cmd) < n {
		s.cmd = make([]byte, n)
	}
	encodeKV(s.cmd, op.in.put, op.in.key, op.op, op.in.value)
	err := c.reps[target].Submit(s.cmd[:n], op.op)
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
		op.returned, op.acked, op.ret, op.index, op.node = true, true, now, index, node
		sm := s.c.sms[node]
		v, ok := sm.outputs[op.op]
		if !ok {
			s.fail("node %d acknowledged op %d at index %d but did not apply it", node, op.op, index)
		} else if sm.at[op.op] != index {
			s.fail("node %d acknowledged op %d at index %d but applied it at %d", node, op.op, index, sm.at[op.op])
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

// read serves op, a get, without the log: at once under target's lease,
// else through SubmitRead, answered by onRead from target's state.
func (s *swarm) read(op *clientOp, target rdma.NodeID) {
	c := s.c
	r := c.reps[target]
	// Also on a paused replica: its driver is stalled, not the caller's
	// goroutine, and the lease must hold by the clock alone.
	if _, ok := r.LeaseRead(); ok {
		now := c.w.Now()
		op.returned, op.ret = true, now
		op.out = kvOutput{value: c.sms[target].data[op.in.key]}
		s.ops = append(s.ops, op)
		s.leaseReads++
		c.w.Schedule(now+int64(s.rng.IntN(30_000)), func() { s.issue(op.client) })
		return
	}
	if err := r.SubmitRead(op.op); err != nil {
		c.w.Schedule(c.w.Now()+20_000, func() { s.issue(op.client) })
		return
	}
	s.ops = append(s.ops, op)
	s.pending[op.op] = op
	c.w.Schedule(c.w.Now()+clientTimeoutNs, func() {
		if s.pending[op.op] == op {
			delete(s.pending, op.op)
			op.out.unknown = true
			s.issue(op.client)
		}
	})
}

// onRead answers a read from node's state machine as it is when the
// replica reports the read linearizable.
func (s *swarm) onRead(node rdma.NodeID, token uint64, index Index, err error) {
	op := s.pending[token]
	if op == nil {
		return
	}
	delete(s.pending, token)
	now := s.c.w.Now()
	op.returned, op.ret = true, now
	if err != nil {
		op.out.unknown = true // a failed read has no effect
	} else {
		if a := Index(s.c.reps[node].applied); a < index {
			s.fail("node %d answered a read at index %d with %d applied", node, index, a)
		}
		op.out = kvOutput{value: s.c.sms[node].data[op.in.key]}
		s.indexReads++
	}
	s.c.w.Schedule(now+int64(s.rng.IntN(30_000)), func() { s.issue(op.client) })
}

func isNotLeader(err error) bool {
	_, ok := err.(*NotLeaderError)
	return ok
}

// injectFault applies one random fault from the enabled set and schedules
// its repair. At most f replicas are crashed, rejoining or damaged at once:
// that is what the protocol claims to survive.
func (s *swarm) injectFault(enabled []string) {
	c, rng, w := s.c, s.rng, s.c.w
	n := len(c.ids)
	kind := enabled[rng.IntN(len(enabled))]
	a := c.ids[rng.IntN(n)]
	b := c.ids[rng.IntN(n)]
	for b == a {
		b = c.ids[rng.IntN(n)]
	}
	dur := int64(200_000 + rng.IntN(3_000_000))
	now := w.Now()
	// The classic kinds are sim.Faults, applied and repaired through the
	// simulator's one injector; only the protocol-aware kinds (which need
	// to know who leads or which slot is half written) live here.
	var hit, fix []sim.Fault
	switch kind {
	case "transfer":
		// Not a fault: the leader hands over to a random member, live or
		// not, while the other faults go on.
		if l, ok := c.leader(); ok && l != b {
			if err := c.reps[l].StartTransfer(b); err == nil {
				s.transfers++
				s.faults = append(s.faults, fmt.Sprintf("%d transfer %d -> %d asked", now, l, b))
			}
		}
		return
	case "member":
		s.changeMembers()
		return
	case "crash":
		if s.crash(a, dur) {
			s.faults = append(s.faults, fmt.Sprintf("%v for %d", sim.Fault{AtNs: now, Kind: sim.FaultCrash, A: a}, dur))
		}
		return
	case "pause":
		hit = []sim.Fault{{Kind: sim.FaultPause, A: a}}
		fix = []sim.Fault{{Kind: sim.FaultResume, A: a}}
	case "slow":
		hit = []sim.Fault{{Kind: sim.FaultSlow, A: a, Factor: 2 + rng.Float64()*20}}
		fix = []sim.Fault{{Kind: sim.FaultSlow, A: a, Factor: 1}}
	case "partition":
		perm := rng.Perm(n)
		cut := 1 + rng.IntN(n-1)
		var g1 []rdma.NodeID
		for _, p := range perm[:cut] {
			g1 = append(g1, c.ids[p])
		}
		hit = []sim.Fault{{Kind: sim.FaultPartition, Group: g1}}
		fix = []sim.Fault{{Kind: sim.FaultHealNetwork}}
	case "partial":
		hit = []sim.Fault{{Kind: sim.FaultCutBoth, A: a, B: b}}
		fix = []sim.Fault{{Kind: sim.FaultHeal, A: a, B: b}, {Kind: sim.FaultHeal, A: b, B: a}}
	case "oneway":
		hit = []sim.Fault{{Kind: sim.FaultCut, A: a, B: b}}
		fix = []sim.Fault{{Kind: sim.FaultHeal, A: a, B: b}}
	case "delay":
		hit = []sim.Fault{{Kind: sim.FaultLinkDelay, A: a, B: b, DelayNs: int64(5_000 + rng.IntN(200_000)), JitterNs: int64(rng.IntN(50_000))}}
		fix = []sim.Fault{{Kind: sim.FaultLinkDelay, A: a, B: b}}
	case "loss":
		hit = []sim.Fault{{Kind: sim.FaultLoss, A: a, B: b, Factor: 0.01 + rng.Float64()*0.3}}
		fix = []sim.Fault{{Kind: sim.FaultLoss, A: a, B: b}}
	default:
		if what := s.injectAdversarial(kind, a, dur); what != "" {
			s.faults = append(s.faults, fmt.Sprintf("%d %s", now, what))
		}
		return
	}
	for _, f := range hit {
		f.Apply(w)
		f.AtNs = now
		s.faults = append(s.faults, fmt.Sprintf("%v for %d", f, dur))
	}
	w.Schedule(now+dur, func() {
		for _, f := range fix {
			f.Apply(w)
		}
	})
}

// changeMembers asks the leader to promote a learner or demote a voter
// (never below three voters).
func (s *swarm) changeMembers() {
	c, rng := s.c, s.rng
	l, ok := c.leader()
	if !ok {
		return
	}
	r := c.reps[l]
	voters := r.Voters()
	var learners []rdma.NodeID
	for _, id := range c.ids {
		if !slices.Contains(voters, id) {
			learners = append(learners, id)
		}
	}
	add := len(learners) > 0 && (len(voters) <= minVoters || rng.IntN(2) == 0)
	id := voters[rng.IntN(len(voters))]
	if add {
		id = learners[rng.IntN(len(learners))]
	}
	if _, err := r.StartConfChange(id, add); err == nil {
		s.confAsked++
		s.faults = append(s.faults, fmt.Sprintf("%d member add=%v %d on leader %d (voters %v)", c.w.Now(), add, id, l, voters))
	}
}

// downs counts the replicas crashed, rejoining, fallen off the log
// (waiting for a snapshot, they can neither vote nor lead), or whose
// memory a fault damaged (they may fence): each is one of the f failures
// tolerated.
func (s *swarm) downs() int {
	k := 0
	for _, id := range s.c.ids {
		r := s.c.reps[id]
		fellOff := uint64(s.topCommit()) >= r.applied+1+r.lay.LogSlots // before it notices
		if s.down[id] || r.rejoining || r.behind || fellOff || s.damaged[r] {
			k++
		}
	}
	return k
}

// budget is how many replicas may be down, damaged or behind at once: f
// of the group, and one when voters are a changing subset of it (one keeps
// a majority of any three or more voters, old and new).
func (s *swarm) budget() int {
	if s.members {
		return 1
	}
	return (len(s.c.ids) - 1) / 2
}

// crash crashes id (its memory is lost) and restarts it dur later, unless
// that would take more than the budget down.
func (s *swarm) crash(id rdma.NodeID, dur int64) bool {
	w := s.c.w
	if s.calm || s.down[id] || s.downs() >= s.budget() {
		return false
	}
	s.down[id] = true
	sim.Fault{Kind: sim.FaultCrash, A: id}.Apply(w)
	w.Schedule(w.Now()+dur, func() { delete(s.down, id); sim.Fault{Kind: sim.FaultRestart, A: id}.Apply(w) })
	return true
}

// swarmLeaseNs is the read lease of the swarm runs that have one: six
// header polls, so a leader with a majority keeps it renewed.
const swarmLeaseNs = 300_000

var allFaults = append([]string{"crash", "pause", "slow", "partition", "partial", "oneway", "delay", "loss", "transfer"}, adversarialFaults...)

// runSwarm is one seeded run: clients issue puts and gets while faults are
// injected; then faults stop and the cluster must recover.
func runSwarm(t *testing.T, seed uint64, o swarmOpts) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := 3
	if rng.IntN(3) == 0 {
		n = 5
	}
	var enabled []string
	for _, f := range allFaults {
		if rng.IntN(2) == 0 {
			enabled = append(enabled, f)
		}
	}
	if len(enabled) == 0 {
		enabled = []string{allFaults[rng.IntN(len(allFaults))]}
	}
	// Some runs carry commands long enough that a slot takes several
	// writes, which a crash or cut can interrupt half way. Some give a
	// leader that lost its majority longer to give up, so a cut can heal
	// while a deposed leader still believes it leads.
	big := rng.IntN(4) == 0 || slices.Contains(enabled, "midslot") && rng.IntN(2) == 0
	slowGiveUp := rng.IntN(4) == 0
	// Half the runs give leaders a read lease; the others read by
	// confirmation rounds only.
	lease := rng.IntN(2) == 0
	// A third of the runs have one or two learners beside the n voters and
	// change voters under the faults (a stream of its own, so the other
	// runs stay as they were).
	mrng := rand.New(rand.NewPCG(seed, 0x3e3b))
	learners := 0
	if mrng.IntN(3) == 0 {
		learners = 1 + mrng.IntN(2)
		enabled = append(enabled, "member")
	}
	c := newCluster(t, seed, n+learners, func(cfg *Config) {
		if learners > 0 {
			cfg.Voters = slices.Clone(cfg.Members[:n])
		}
		if big {
			bigSlots(cfg)
		}
		if slowGiveUp {
			cfg.ElectionTimeoutNs = slowGiveUpNs
		}
		if lease {
			cfg.ReadLeaseNs = swarmLeaseNs
		}
	})
	s := newSwarm(t, c)
	s.reads = true
	s.members = learners > 0
	if big {
		s.pad = bigCommandPad
	}
	fail := s.failer(seed, fmt.Sprintf("learners=%d n=%d big slots %v slow give-up %v lease %v faults enabled %v", learners, n, big, slowGiveUp, lease, enabled))
	s.watch(fail)

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
		if s.members && rng.IntN(2) == 0 {
			s.changeMembers()
		}
		c.w.RunFor(int64(500_000 + rng.IntN(2_500_000)))
	}
	s.finish(seed, o.livenessNs, fail)
}

// failer returns how a run fails: the failure, what the run was (about),
// the faults injected, the leader changes, each replica's state and the
// replay command. It ends the test.
func (s *swarm) failer(seed uint64, about string) func(format string, args ...any) {
	t, c := s.t, s.c
	return func(format string, args ...any) {
		t.Helper()
		if os.Getenv("MU_TRACE") != "" {
			_ = os.WriteFile("/tmp/mu-trace.txt", c.w.Trace(), 0o644)
		}
		t.Errorf(format, args...)
		t.Logf("%s; injected:\n%v\nleader changes:\n%v\nreplay: %s", about, strings.Join(s.faults, "\n"), c.leaderLog, sim.ReplayCommand(t, seed))
		for _, id := range c.ids {
			t.Log(c.reps[id].debugString())
		}
		t.FailNow()
	}
}

// finish stops the faults and checks the outcome of a run: a client
// operation issued afterwards commits within livenessNs; once clients stop,
// every replica that is not fenced (watch: its memory was damaged)
// converges on the leader's state; no replica applied a different command
// at an index or one command twice; every acknowledged operation is in the
// log at its index; and the client history is linearizable.
func (s *swarm) finish(seed uint64, livenessNs int64, fail func(format string, args ...any)) {
	c := s.c
	s.calm = true
	c.w.ClearFaults()
	for _, id := range c.ids {
		if s.down[id] {
			delete(s.down, id)
			c.w.Restart(id)
		}
	}
	healAt := c.w.Now()
	before := len(s.ops)
	if !c.w.RunUntil(func() bool {
		for _, op := range s.ops[before:] {
			if op.acked {
				return true
			}
		}
		return false
	}, healAt+livenessNs) {
		fail("no operation committed within %d ms of the faults stopping", livenessNs/1_000_000)
	}
	s.stopped = true
	c.w.RunUntil(func() bool { return len(s.pending) == 0 }, c.w.Now()+5_000_000)
	var ldr rdma.NodeID
	if !c.w.RunUntil(func() bool { var ok bool; ldr, ok = c.leader(); return ok }, c.w.Now()+livenessNs) {
		fail("no leader within %d ms at the end", livenessNs/1_000_000)
	}
	if !c.w.RunUntil(func() bool {
		for _, id := range c.ids {
			if !c.reps[id].Fenced() && c.reps[id].AppliedIndex() != c.reps[ldr].AppliedIndex() {
				return false
			}
		}
		return true
	}, c.w.Now()+livenessNs) {
		fail("replicas did not converge within %d ms", livenessNs/1_000_000)
	}
	c.checkSafety()
	for _, id := range c.ids {
		if v, lv := c.reps[id].Voters(), c.reps[ldr].Voters(); !c.reps[id].Fenced() && !slices.Equal(v, lv) {
			fail("node %d has voters %v, leader %d has %v", id, v, ldr, lv)
		}
	}
	for _, id := range c.ids {
		if !c.reps[id].Fenced() && fmt.Sprint(c.sms[id].data) != fmt.Sprint(c.sms[ldr].data) {
			fail("node %d state %v differs from leader %d state %v", id, c.sms[id].data, ldr, c.sms[ldr].data)
		}
	}
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
	s.t.Logf("reads: %d under the lease, %d confirmed (lease %d ns); transfers %d of %d; membership changes %d of %d, voters %v",
		s.leaseReads, s.indexReads, s.c.cfg.ReadLeaseNs, s.transferred, s.transfers, s.confDone, s.confAsked, c.reps[ldr].Voters())
	checkLinearizable(s.t, seed, s.ops)
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
// partition, two-way and one-way link cuts, delay and loss, and the
// adversarial kinds (adversarialFaults: the leader's inbound links cut,
// moving crossed cuts, bit flips in any slot or header word, failures in
// the middle of a multi-write slot and around a snapshot push), injected
// for 10 ms of virtual time while three clients issue puts and gets. Some
// runs use slots several writes long, some a slow leader give-up. Checked
// after every event: no two replicas apply or hold committed different
// commands at one index, no commit index goes back, virtual time moves;
// at once: no replica whose memory was not damaged fences itself; at the
// end: every acknowledged proposal is in the log at its index; the client
// history is linearizable (porcupine); and once faults stop, a leader
// commits a new client operation within 60 ms and every replica that is
// not fenced converges to the same applied index and state within another
// 60 ms. Seeds run in parallel.
func TestSwarmSafety2000Seeds(t *testing.T) {
	sim.Seeds(t, seeds(2000), func(t *testing.T, seed uint64) {
		t.Parallel()
		runSwarm(t, seed, swarmOpts{faultNs: 10_000_000, livenessNs: 60_000_000})
	})
}
