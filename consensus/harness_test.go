package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// kvCmd is a test command: a put or get on a small key space, tagged with a
// unique op id so outputs can be matched to client calls. Padding may
// follow (ignored), to make slots longer than one write.
//
//	0 u8 kind (1 put, 2 get)   1 u8 key   2 u64 op id   10 u64 value
const kvCmdBytes = 18

func encodeKV(buf []byte, put bool, key uint8, op, value uint64) []byte {
	buf = buf[:kvCmdBytes]
	buf[0] = 2
	if put {
		buf[0] = 1
	}
	buf[1] = key
	binary.LittleEndian.PutUint64(buf[2:], op)
	binary.LittleEndian.PutUint64(buf[10:], value)
	return buf
}

// kvSM is the replicated key-value state machine used by the tests. It
// records what it applied so safety checks can compare replicas.
type kvSM struct {
	node     rdma.NodeID
	data     map[uint8]uint64
	outputs  map[uint64]uint64 // op id -> value read (gets) or written (puts)
	at       map[uint64]Index  // op id -> index it was applied at
	onApply  func(node rdma.NodeID, index Index, cmd []byte)
	applied  uint64 // commands
	last     Index
	posIndex Index
	pos      int
	seen     map[uint64]struct{}
	dups     []uint64
	base     Index // index of the last snapshot restored
}

func newKV(node rdma.NodeID, onApply func(rdma.NodeID, Index, []byte)) *kvSM {
	return &kvSM{node: node, data: map[uint8]uint64{}, outputs: map[uint64]uint64{}, at: map[uint64]Index{}, onApply: onApply, seen: map[uint64]struct{}{}}
}

func (s *kvSM) Apply(index Index, cmd []byte) {
	if len(cmd) < kvCmdBytes {
		panic(fmt.Sprintf("node %d: bad command length %d at %d", s.node, len(cmd), index))
	}
	if index < s.last {
		panic(fmt.Sprintf("node %d: applied index %d after %d", s.node, index, s.last))
	}
	s.last = index
	key, op := cmd[1], binary.LittleEndian.Uint64(cmd[2:])
	if _, dup := s.seen[op]; dup {
		s.dups = append(s.dups, op) // applied twice: exactly-once broken
	}
	s.seen[op] = struct{}{}
	s.at[op] = index
	if cmd[0] == 1 {
		v := binary.LittleEndian.Uint64(cmd[10:])
		s.data[key] = v
		s.outputs[op] = v
	} else {
		s.outputs[op] = s.data[key]
	}
	s.applied++
	if s.onApply != nil {
		s.onApply(s.node, index, cmd)
	}
}

func (s *kvSM) Snapshot() ([]byte, error) {
	out := make([]byte, 0, 9*len(s.data)+8)
	out = binary.LittleEndian.AppendUint64(out, uint64(s.last))
	for k := 0; k < 256; k++ {
		if v, ok := s.data[uint8(k)]; ok {
			out = append(out, uint8(k))
			out = binary.LittleEndian.AppendUint64(out, v)
		}
	}
	return out, nil
}

func (s *kvSM) Restore(index Index, snap []byte) error {
	if len(snap) < 8 || (len(snap)-8)%9 != 0 {
		return errors.New("kv: bad snapshot")
	}
	s.data = map[uint8]uint64{}
	for p := snap[8:]; len(p) > 0; p = p[9:] {
		s.data[p[0]] = binary.LittleEndian.Uint64(p[1:])
	}
	s.last = index
	s.base = index
	return nil
}

// cluster is n replicas on a simulated fabric.
type cluster struct {
	t       testing.TB
	w       *sim.World
	cfg     Config
	ids     []rdma.NodeID
	reps    map[rdma.NodeID]*Replica
	sms     map[rdma.NodeID]*kvSM
	region  int
	onReply func(node rdma.NodeID, token uint64, index Index, err error)
	onRead  func(node rdma.NodeID, token uint64, index Index, err error)
	// onTransfer receives the outcome of a StartTransfer on node.
	onTransfer func(node, to rdma.NodeID, err error)
	onLeader   func(id rdma.NodeID)
	// onConf receives the outcome of a StartConfChange on node.
	onConf func(node rdma.NodeID, gen uint64, err error)
	// onCorrupt is called when a replica reports corruption and fences.
	onCorrupt func(id rdma.NodeID)

	// safety: the command sequence applied at each index, first writer wins
	applied     map[Index][][]byte
	violations  []string
	leaderLog   []string
	terms       int
	corruptions map[rdma.NodeID]int
	// stepDowns: each node's reasons for stopping leading, in order.
	stepDowns map[rdma.NodeID][]StepDownReason
}

// debugLeaderChanges adds each deposed leader's state to the leader log.
var debugLeaderChanges = os.Getenv("MU_DEBUG_LEADER") != ""

func testConfig(members []rdma.NodeID) Config {
	c := DefaultConfig()
	c.Members = members
	c.LogSlots = 64
	c.MaxPayloadBytes = 512
	c.MaxInflightSlots = 16
	c.ReadWindowSlots = 16
	c.MaxBulkWriteBytes = 64 << 10
	c.SubmitQueue = 256
	c.SnapshotMaxBytes = 8192
	c.Permissions.RequestTimeoutNs = 300_000
	// Virtual time has no host stalls to outlast: the simulator's runs
	// keep the 2 ms election timeout their bounds were set with, whatever
	// the default for real hosts.
	c.ElectionTimeoutNs = 2_000_000
	// 1% precision: 30 KB histograms instead of 200 KB per window slot,
	// which thousands of seeded clusters allocate.
	c.FailSlow.SignificantFigures = 2
	return c
}

func withTrace(sc sim.Config) sim.Config {
	sc.Trace = os.Getenv("MU_TRACE") != ""
	return sc
}

func simConfig() sim.Config {
	return sim.DefaultConfig().WithTransportTimeout(2_000_000)
}

func newCluster(t testing.TB, seed uint64, n int, mutate func(*Config)) *cluster {
	t.Helper()
	return newClusterSim(t, seed, n, simConfig(), mutate)
}

func newClusterSim(t testing.TB, seed uint64, n int, sc sim.Config, mutate func(*Config)) *cluster {
	t.Helper()
	ids := make([]rdma.NodeID, n)
	for i := range ids {
		ids[i] = rdma.NodeID(i + 1)
	}
	cfg := testConfig(ids)
	if mutate != nil {
		mutate(&cfg)
	}
	c := &cluster{
		t: t, w: sim.New(seed, withTrace(sc)), cfg: cfg, ids: ids,
		reps: map[rdma.NodeID]*Replica{}, sms: map[rdma.NodeID]*kvSM{},
		applied: map[Index][][]byte{}, corruptions: map[rdma.NodeID]int{},
	}
	c.region = int(cfg.RegionBytes())
	for _, id := range ids {
		c.w.AddNode(id, c.region)
	}
	c.w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll})
	for _, id := range ids {
		c.start(id, false)
	}
	c.w.SetRestartHook(func(id rdma.NodeID) { c.start(id, true) })
	return c
}

// start installs a fresh replica (and state machine) on node id.
func (c *cluster) start(id rdma.NodeID, rejoining bool) {
	cfg := c.cfg
	cfg.Rejoining = rejoining
	c.install(id, cfg)
}

// install builds a replica on node id from cfg with the harness's
// observers (leader log, corruption reports, replies) and a fresh state
// machine, installed before New so a journal's replay reaches it.
func (c *cluster) install(id rdma.NodeID, cfg Config) {
	cfg.OnLeaderChange = func(ch LeaderChange) {
		if ch.Leader {
			c.terms++
			if ch.TookOver == TakeoverNone {
				c.violations = append(c.violations, fmt.Sprintf("%d: node %d leads with no cause", ch.AtNs, id))
			}
			if c.onLeader != nil {
				c.onLeader(id)
			}
		}
		if !ch.Leader {
			if c.stepDowns == nil {
				c.stepDowns = map[rdma.NodeID][]StepDownReason{}
			}
			c.stepDowns[id] = append(c.stepDowns[id], ch.Reason)
			if ch.Reason == StepDownNone {
				c.violations = append(c.violations, fmt.Sprintf("%d: node %d stopped leading with no reason", ch.AtNs, id))
			}
		}
		c.leaderLog = append(c.leaderLog, fmt.Sprintf("%d: node %d leader=%v proposal=%d first=%d reason=%v took_over=%v",
			ch.AtNs, id, ch.Leader, ch.Proposal, ch.FirstIndex, ch.Reason, ch.TookOver))
		if debugLeaderChanges && !ch.Leader {
			c.leaderLog = append(c.leaderLog, c.reps[id].debugString())
		}
	}
	cfg.OnCorruption = func(rep CorruptionReport) {
		c.corruptions[id]++
		msg := fmt.Sprintf("%d: node %d fenced at index %d", rep.AtNs, id, rep.Index)
		if r := c.reps[id]; r != nil {
			msg += fmt.Sprintf(": %s; commit %d commit word %d", r.slotInfo(uint64(rep.Index)), r.commit, commitWord(r))
			for j := uint64(rep.Index) + 1; j < uint64(rep.Index)+5; j++ {
				msg += "\n  " + r.slotInfo(j)
			}
		}
		c.leaderLog = append(c.leaderLog, msg)
		if c.onCorrupt != nil {
			c.onCorrupt(id)
		}
	}
	cfg.OnConfChange = func(index Index, voters []rdma.NodeID) {
		// One value per index holds for configuration entries too.
		c.recordApply(id, index, confRecord(voters))
	}
	sm := newKV(id, c.recordApply)
	prev := c.sms[id]
	c.sms[id] = sm
	r, err := New(c.w.Node(id), sm, cfg)
	if err != nil {
		c.sms[id] = prev
		c.t.Fatalf("node %d: %v", id, err)
	}
	r.SetResultHandler(func(token uint64, index Index, err error) {
		if c.onReply != nil {
			c.onReply(id, token, index, err)
		}
	})
	r.SetReadHandler(func(token uint64, index Index, err error) {
		if c.onRead != nil {
			c.onRead(id, token, index, err)
		}
	})
	r.SetConfChangeHandler(func(gen uint64, err error) {
		if c.onConf != nil {
			c.onConf(id, gen, err)
		}
	})
	r.SetTransferHandler(func(to rdma.NodeID, err error) {
		if c.onTransfer != nil {
			c.onTransfer(id, to, err)
		}
	})
	c.reps[id] = r
	c.w.SetStepper(id, r)
}

// recordApply checks that every replica applies the same commands at the
// same index (State Machine Safety).
func (c *cluster) recordApply(node rdma.NodeID, index Index, cmd []byte) {
	sm := c.sms[node]
	seq := c.applied[index]
	// Position of this command within its slot on this node: count what
	// this node applied at index so far.
	pos := sm.posAt(index)
	if pos < len(seq) {
		if string(seq[pos]) != string(cmd) {
			v := fmt.Sprintf("node %d applied %x at index %d position %d, another replica applied %x (at %d ns)", node, cmd, index, pos, seq[pos], c.w.Now())
			for _, id := range c.ids {
				v += "\n" + c.reps[id].slotInfo(uint64(index))
			}
			c.violations = append(c.violations, v)
		}
		return
	}
	c.applied[index] = append(seq, append([]byte(nil), cmd...))
}

// confRecord stands for a configuration entry in the harness's record of
// what was applied at each index: no command has its first byte or its
// op id (all ones).
func confRecord(voters []rdma.NodeID) []byte {
	b := make([]byte, 10, 10+len(voters))
	b[0] = 0xcf
	for i := 2; i < 10; i++ {
		b[i] = 0xff
	}
	for _, v := range voters {
		b = append(b, byte(v))
	}
	return b
}

func (s *kvSM) posAt(index Index) int {
	if s.posIndex != index {
		s.posIndex, s.pos = index, 0
	}
	s.pos++
	return s.pos - 1
}

func (c *cluster) leader() (rdma.NodeID, bool) {
	for _, id := range c.ids {
		n := c.w.Node(id)
		if !n.Crashed() && c.reps[id].IsLeader() {
			return id, true
		}
	}
	return 0, false
}

// leaders are the live replicas that believe they lead (more than one
// while a deposed leader has not noticed).
func (c *cluster) leaders() []rdma.NodeID {
	var ls []rdma.NodeID
	for _, id := range c.ids {
		if !c.w.Node(id).Crashed() && c.reps[id].IsLeader() {
			ls = append(ls, id)
		}
	}
	return ls
}

func (c *cluster) checkSafety() {
	c.t.Helper()
	for _, id := range c.ids {
		if d := c.sms[id].dups; len(d) > 0 {
			c.t.Fatalf("node %d applied op %d more than once", id, d[0])
		}
	}
	if len(c.violations) > 0 {
		c.t.Fatalf("safety violated (%d):\n%s\nleader changes:\n%v", len(c.violations), c.violations[0], c.leaderLog)
	}
}

// commitWord is the commit index in r's header, 0 when the word is damaged.
func commitWord(r *Replica) uint64 {
	v, _ := openWord(le.Uint64(r.region[hdrCommit:]))
	return v
}

// seeds is n for a seeded simulator test, a twentieth of it (at least 5)
// under the race detector: the simulator steps every replica on one
// goroutine, so more seeds teach the detector little while each costs
// about ten times as much; the full count runs without -race.
func seeds(n int) int {
	if raceEnabled {
		return max(n/20, 5)
	}
	return n
}
