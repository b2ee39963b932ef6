package pullscore_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

const (
	hbOffset      = 0
	scratchOffset = 64
	regionBytes   = 4096
	// readLatencyMaxNs bounds one simulated read (request + response, base
	// plus jitter, without the rare tail) with margin.
	readLatencyMaxNs = 40_000
)

// testSeed is MU_SEED when set, else def; the test logs it so a failure
// can be replayed with MU_SEED=<seed>.
func testSeed(t *testing.T, def uint64) uint64 {
	t.Helper()
	seed := def
	if s := os.Getenv("MU_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MU_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay: MU_SEED=%d go test -run '%s' ./pullscore)", seed, seed, t.Name())
	return seed
}

// member drives one node's detector the way the consensus loop does: poll
// completions, route the detector's, step it.
type member struct {
	fab *sim.Node
	det *pullscore.Detector
	buf [16]rdma.Completion
	// stepFirst steps the detector before polling, as consensus does:
	// a node waking from a stall judges its peers before it has seen the
	// completions that arrived meanwhile.
	stepFirst bool
}

func (m *member) Step(now int64) int64 {
	if m.stepFirst {
		next := m.det.Step(now)
		m.poll()
		return next
	}
	m.poll()
	return m.det.Step(now)
}

func (m *member) poll() {
	for {
		n := m.fab.Poll(m.buf[:])
		for _, c := range m.buf[:n] {
			if c.ID>>56 == pullscore.Tag {
				m.det.OnCompletion(c)
			}
		}
		if n < len(m.buf) {
			break
		}
	}
}

type cluster struct {
	w   *sim.World
	ids []rdma.NodeID
	m   map[rdma.NodeID]*member
	cfg pullscore.Config
}

func newCluster(t *testing.T, n int, seed uint64, simCfg sim.Config) *cluster {
	t.Helper()
	return newClusterWith(t, n, seed, simCfg, pullscore.DefaultConfig())
}

func newClusterWith(t *testing.T, n int, seed uint64, simCfg sim.Config, cfg pullscore.Config) *cluster {
	t.Helper()
	w := sim.New(seed, simCfg)
	c := &cluster{w: w, m: map[rdma.NodeID]*member{}, cfg: cfg}
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, rdma.NodeID(i))
		w.AddNode(rdma.NodeID(i), regionBytes)
	}
	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll})
	for _, id := range c.ids {
		var peers []rdma.NodeID
		for _, p := range c.ids {
			if p != id {
				peers = append(peers, p)
			}
		}
		d, err := pullscore.NewDetector(w.Node(id), id, peers, hbOffset, scratchOffset, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.m[id] = &member{fab: w.Node(id), det: d}
		w.SetStepper(id, c.m[id])
	}
	return c
}

// settle runs until every detector has every peer at full score and
// names a leader (its warm-up is over).
func (c *cluster) settle(t *testing.T) {
	t.Helper()
	ok := c.w.RunUntil(func() bool {
		for _, a := range c.ids {
			if _, ok := c.m[a].det.Leader(); !ok {
				return false
			}
			for _, b := range c.ids {
				if a != b && c.m[a].det.Score(b) != c.cfg.ScoreMax {
					return false
				}
			}
		}
		return true
	}, c.w.Now()+5_000_000)
	if !ok {
		t.Fatalf("cluster did not reach full scores by %d ns", c.w.Now())
	}
}

// leadersAre reports whether every node in nodes names want as leader.
func (c *cluster) leadersAre(want rdma.NodeID, nodes ...rdma.NodeID) bool {
	for _, id := range nodes {
		if l, ok := c.m[id].det.Leader(); !ok || l != want {
			return false
		}
	}
	return true
}

func without(ids []rdma.NodeID, drop rdma.NodeID) []rdma.NodeID {
	var out []rdma.NodeID
	for _, id := range ids {
		if id != drop {
			out = append(out, id)
		}
	}
	return out
}

// detectionBoundNs is the longest a correct detector may take to move
// every survivor's leader off a silent node at full score: MissesToFail
// samples (with derived steps, the failure bound measured on a quiet
// fabric: at most 8 periods), one period of sampling phase, then one more
// sample plus a read for the survivors to read each other's updated views.
func detectionBoundNs(cfg pullscore.Config) int64 {
	if cfg.Adaptive() {
		return 10*2*cfg.ReadIntervalNs + 2*readLatencyMaxNs
	}
	return int64(cfg.MissesToFail()+2)*cfg.ReadIntervalNs + 2*readLatencyMaxNs
}

func TestBootNoFalseLeader(t *testing.T) {
	for _, n := range []int{3, 5} {
		c := newCluster(t, n, testSeed(t, 1), sim.DefaultConfig())
		// Until the warm-up is over nobody answers; from the first answer
		// on, everyone answers 1 and never anything else.
		for c.w.Now() < 2_000_000 {
			c.w.RunFor(5_000)
			for _, id := range c.ids {
				if l, ok := c.m[id].det.Leader(); ok && l != 1 {
					t.Fatalf("n=%d t=%d: node %d names %d leader at boot", n, c.w.Now(), id, l)
				}
			}
		}
		if !c.leadersAre(1, c.ids...) {
			t.Fatalf("n=%d: no agreement on leader 1 after 2 ms", n)
		}
		for _, id := range c.ids {
			if ch := c.m[id].det.Stats().LeaderChange; ch != 1 {
				t.Fatalf("n=%d: node %d changed leader %d times at boot, want 1", n, id, ch)
			}
		}
	}
}

// failover crashes or pauses node 1 and checks that every survivor moves
// its leader to 2 within the bound, and not before node 1 stopped.
func failover(t *testing.T, n int, fault func(*sim.World, rdma.NodeID)) int64 {
	c := newCluster(t, n, testSeed(t, 7), sim.DefaultConfig())
	c.settle(t)
	c.w.RunFor(100_000)
	if !c.leadersAre(1, c.ids...) {
		t.Fatalf("leader is not 1 before the fault")
	}
	start := c.w.Now()
	fault(c.w, 1)
	survivors := without(c.ids, 1)
	bound := detectionBoundNs(c.cfg)
	if !c.w.RunUntil(func() bool { return c.leadersAre(2, survivors...) }, start+bound) {
		for _, id := range survivors {
			l, ok := c.m[id].det.Leader()
			t.Logf("node %d: leader %d %v, score of 1: %d", id, l, ok, c.m[id].det.Score(1))
		}
		t.Fatalf("n=%d: survivors did not move to leader 2 within %d ns", n, bound)
	}
	took := c.w.Now() - start
	// The lower side: the misses that fail a peer span the failure bound
	// from the last fresh read, posted at most a period and a read before
	// the fault.
	if min := c.cfg.FailBoundNs - c.m[2].det.PeriodNs() - readLatencyMaxNs; took < min {
		t.Fatalf("moved after %d ns, faster than the failure bound allows (%d ns)", took, min)
	}
	// A survivor may switch on the others' views before its own verdict
	// drops; its own verdict follows within the same bound.
	if !c.w.RunUntil(func() bool {
		for _, id := range survivors {
			if c.m[id].det.Alive(1) {
				return false
			}
		}
		return true
	}, start+bound) {
		t.Fatalf("n=%d: a survivor still sees 1 alive %d ns after the fault", n, bound)
	}
	// Stable afterwards.
	c.w.RunFor(2_000_000)
	if !c.leadersAre(2, survivors...) {
		t.Fatalf("leader moved away from 2 after failover")
	}
	return took
}

func TestCrashLeaderDetected(t *testing.T) {
	for _, n := range []int{3, 5} {
		took := failover(t, n, func(w *sim.World, id rdma.NodeID) { w.Crash(id, false) })
		t.Logf("n=%d crash: all survivors name 2 after %.1f µs (bound %.1f µs)", n, float64(took)/1e3, float64(detectionBoundNs(pullscore.DefaultConfig()))/1e3)
	}
}

func TestPausedLeaderDetected(t *testing.T) {
	for _, n := range []int{3, 5} {
		took := failover(t, n, func(w *sim.World, id rdma.NodeID) { w.Pause(id) })
		t.Logf("n=%d pause: all survivors name 2 after %.1f µs", n, float64(took)/1e3)
	}
}

func TestPausedLeaderComesBack(t *testing.T) {
	c := newCluster(t, 3, testSeed(t, 3), sim.DefaultConfig())
	c.settle(t)
	c.w.Pause(1)
	if !c.w.RunUntil(func() bool { return c.leadersAre(2, 2, 3) }, c.w.Now()+2_000_000) {
		t.Fatal("no failover")
	}
	c.w.Resume(1)
	start := c.w.Now()
	// Recovery needs the score to climb from below 2 to above 6.
	if !c.w.RunUntil(func() bool { return c.leadersAre(1, 1, 2, 3) }, start+2_000_000) {
		t.Fatal("resumed node 1 not leader again")
	}
	took := c.w.Now() - start
	if min := int64(c.cfg.HitsToRecover()-1) * c.cfg.ReadIntervalNs; took < min {
		t.Fatalf("recovered after %d ns: faster than the hysteresis allows (%d)", took, min)
	}
}

func TestFencedLeaderLosesLeadership(t *testing.T) {
	c := newCluster(t, 3, testSeed(t, 5), sim.DefaultConfig())
	c.settle(t)
	start := c.w.Now()
	c.m[1].det.SetHealth(pullscore.Fenced)
	if l, ok := c.m[1].det.Leader(); ok && l == 1 {
		t.Fatal("fenced node still names itself leader")
	}
	if c.m[1].det.Alive(1) {
		t.Fatal("fenced node counts itself alive")
	}
	// Peers learn it from the health word with their next read: well
	// before the score could decay.
	bound := 2*c.cfg.ReadIntervalNs + 2*readLatencyMaxNs
	if !c.w.RunUntil(func() bool { return c.leadersAre(2, 1, 2, 3) }, start+bound) {
		t.Fatalf("leader not 2 everywhere within %d ns of fencing", bound)
	}
	if h := c.m[2].det.PeerHealth(1); h != pullscore.Fenced {
		t.Fatalf("node 2 sees node 1 as %v", h)
	}
	// The beat stopped: the score decays and stays down.
	c.w.RunFor(2_000_000)
	if c.m[2].det.Alive(1) || !c.leadersAre(2, 1, 2, 3) {
		t.Fatalf("fenced node 1: alive at 2 = %v", c.m[2].det.Alive(1))
	}
}

func TestDegradedLeadsOnlyWithoutHealthy(t *testing.T) {
	c := newCluster(t, 3, testSeed(t, 9), sim.DefaultConfig())
	c.settle(t)
	c.m[1].det.SetHealth(pullscore.Degraded)
	if !c.w.RunUntil(func() bool { return c.leadersAre(2, 1, 2, 3) }, c.w.Now()+200_000) {
		t.Fatal("degraded node 1 still preferred over healthy 2")
	}
	c.m[2].det.SetHealth(pullscore.Degraded)
	c.m[3].det.SetHealth(pullscore.Degraded)
	if !c.w.RunUntil(func() bool { return c.leadersAre(1, 1, 2, 3) }, c.w.Now()+200_000) {
		t.Fatal("with every node degraded, the lowest should lead")
	}
	c.m[3].det.SetHealth(pullscore.Healthy)
	if !c.w.RunUntil(func() bool { return c.leadersAre(3, 1, 2, 3) }, c.w.Now()+200_000) {
		t.Fatal("the only healthy node 3 should lead")
	}
}

// TestPartialConnectivityAgreement: 1 and 2 cannot reach each other, both
// reach 3. Everyone keeps naming 1, and no node's answer changes.
func TestPartialConnectivityAgreement(t *testing.T) {
	for _, n := range []int{3, 5} {
		c := newCluster(t, n, testSeed(t, 11), sim.DefaultConfig())
		c.settle(t)
		changes := map[rdma.NodeID]uint64{}
		for _, id := range c.ids {
			changes[id] = c.m[id].det.Stats().LeaderChange
		}
		c.w.CutBoth(1, 2)
		for end := c.w.Now() + 5_000_000; c.w.Now() < end; {
			c.w.RunFor(10_000)
			if !c.leadersAre(1, c.ids...) {
				for _, id := range c.ids {
					d := c.m[id].det
					l, ok := d.Leader()
					t.Logf("node %d: leader %d %v bound %d period %d stats %+v", id, l, ok, d.FailBoundNs(), d.PeriodNs(), d.Stats())
				}
				t.Fatalf("n=%d t=%d: leader moved off 1 under a 1-2 cut", n, c.w.Now())
			}
		}
		if c.m[2].det.Alive(1) || c.m[1].det.Alive(2) {
			t.Fatalf("n=%d: the cut pair still sees each other", n)
		}
		for _, id := range c.ids {
			if got := c.m[id].det.Stats().LeaderChange; got != changes[id] {
				t.Fatalf("n=%d: node %d changed its leader %d times under the cut", n, id, got-changes[id])
			}
		}
	}
}

// TestMinorityAnswersNoLeader: a node cut from everyone must not name
// itself leader.
func TestMinorityAnswersNoLeader(t *testing.T) {
	c := newCluster(t, 3, testSeed(t, 13), sim.DefaultConfig())
	c.settle(t)
	c.w.Partition([]rdma.NodeID{3}, []rdma.NodeID{1, 2})
	c.w.RunFor(2_000_000)
	if l, ok := c.m[3].det.Leader(); ok {
		t.Fatalf("isolated node 3 names %d leader", l)
	}
	if !c.leadersAre(1, 1, 2) {
		t.Fatal("majority side lost leader 1")
	}
}

// TestSlowReadsAreMissesNotStacked: when reads take longer than a fixed
// period, a read outstanding at the next sample is a miss and no second
// read is posted on top of it.
func TestSlowReadsAreMissesNotStacked(t *testing.T) {
	c := newClusterWith(t, 3, testSeed(t, 17), sim.DefaultConfig(), pullscore.MuConfig())
	c.settle(t)
	before := c.m[2].det.Stats()
	c.w.SetLinkDelay(1, 2, 60_000, 0) // responses 1->2 take 60 µs more
	c.w.RunFor(2_000_000)
	st := c.m[2].det.Stats()
	samples := st.Samples - before.Samples
	posted := st.ReadsPosted - before.ReadsPosted
	// Peer 3 gets one read per sample; peer 1 at most one per two.
	if posted > samples+samples/2+1 || st.ReadsLate == before.ReadsLate {
		t.Fatalf("samples %d posted %d late %d: reads were stacked or never late", samples, posted, st.ReadsLate-before.ReadsLate)
	}
	// Mu's detector only reads: a peer whose reads are always late fails.
	if c.m[2].det.Alive(1) {
		t.Fatal("a peer whose reads always return late stays alive")
	}
	if !c.m[2].det.Alive(3) {
		t.Fatal("the healthy peer 3 was scored down")
	}
}

func TestStepDoesNotAllocate(t *testing.T) {
	c := newCluster(t, 5, testSeed(t, 19), sim.DefaultConfig())
	c.settle(t)
	// A whole sampling round of a five-node cluster: every node steps,
	// posts reads, takes completions, recomputes its leader.
	allocs := testing.AllocsPerRun(200, func() {
		c.w.RunFor(c.cfg.ReadIntervalNs)
		c.m[1].det.Leader()
	})
	if allocs != 0 {
		t.Fatalf("a sampling round allocates %.1f times", allocs)
	}
}

func TestNewDetectorRejects(t *testing.T) {
	w := sim.New(1, sim.DefaultConfig())
	w.AddNode(1, 256)
	f := w.Node(1)
	cfg := pullscore.DefaultConfig()
	tests := []struct {
		name            string
		self            rdma.NodeID
		peers           []rdma.NodeID
		hb, scratch     uint64
		wantInErrorText string
	}{
		{"self not the fabric's", 2, []rdma.NodeID{3}, 0, 64, "self = 2"},
		{"self among peers", 1, []rdma.NodeID{1, 2}, 0, 64, "peers[0] = 1"},
		{"duplicate peer", 1, []rdma.NodeID{2, 2}, 0, 64, "peers[1] = 2"},
		{"id too large", 1, []rdma.NodeID{64}, 0, 64, "peers[0] = 64"},
		{"unaligned heartbeat", 1, []rdma.NodeID{2}, 4, 64, "hbOffset = 4"},
		{"scratch past the region", 1, []rdma.NodeID{2, 3}, 0, 240, "scratchOffset = 240"},
		{"overlap", 1, []rdma.NodeID{2, 3}, 16, 8, "overlap"},
	}
	for _, tt := range tests {
		_, err := pullscore.NewDetector(f, tt.self, tt.peers, tt.hb, tt.scratch, cfg)
		if !errors.Is(err, pullscore.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantInErrorText) {
			t.Errorf("%s: got %v, want ErrInvalidConfig mentioning %q", tt.name, err, tt.wantInErrorText)
		}
	}
	bad := cfg
	bad.FailBelow = 0
	if _, err := pullscore.NewDetector(f, 1, []rdma.NodeID{2}, 0, 64, bad); !errors.Is(err, pullscore.ErrInvalidConfig) {
		t.Errorf("invalid config accepted: %v", err)
	}
}

// TestSlowPeerStretchesThePeriod: with the period measured, a peer whose
// reads take 80 µs is slow, not dead: the period grows past its round trip
// and it stays alive.
func TestSlowPeerStretchesThePeriod(t *testing.T) {
	c := newCluster(t, 3, testSeed(t, 17), sim.DefaultConfig())
	c.settle(t)
	c.w.SetLinkDelay(1, 2, 60_000, 0)
	c.w.RunFor(5_000_000)
	d := c.m[2].det
	if p := d.PeriodNs(); p < 60_000 {
		t.Fatalf("period %d ns with an 80 µs round trip to a peer", p)
	}
	if !d.Alive(1) || !d.Alive(3) {
		t.Fatalf("alive 1: %v, 3: %v", d.Alive(1), d.Alive(3))
	}
	if l, ok := d.Leader(); !ok || l != 1 {
		t.Fatalf("leader %d %v, want 1", l, ok)
	}
}

// TestNoFalseSuspicionQuietFabric: on the rxe-fitted fabric with no fault,
// no verdict turns failed over 50 ms (its 1% tails included), and the
// derived bound stays within a few periods.
func TestNoFalseSuspicionQuietFabric(t *testing.T) {
	c := newCluster(t, 3, testSeed(t, 23), sim.DefaultConfig())
	c.settle(t)
	c.w.RunFor(50_000_000)
	for _, id := range c.ids {
		d := c.m[id].det
		if st := d.Stats(); st.LeaderChange != 1 {
			t.Fatalf("node %d: %d leader changes without a fault", id, st.LeaderChange)
		}
		t.Logf("node %d: period %d ns, bound %d ns, read rtt %d ns, suspicions %d", id, d.PeriodNs(), d.FailBoundNs(), d.ReadRTTNs(), d.Stats().Suspicions)
		if b := d.FailBoundNs(); b > 10*d.PeriodNs() {
			t.Fatalf("node %d: bound %d ns is over 10 periods of %d ns on a quiet fabric", id, b, d.PeriodNs())
		}
	}
}
