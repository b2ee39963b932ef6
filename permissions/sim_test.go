package permissions_test

import (
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/rdmaconsensus/mu/permissions"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// Region layout of the test nodes.
const (
	hbOffset      = 0
	scratchOffset = 64
	permOffset    = 256
	logOffset     = 1024
	regionBytes   = 4096
	// consensusTag marks the test's own log writes, as consensus's would be.
	consensusTag = 1
)

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
	t.Logf("seed %d (replay: MU_SEED=%d go test -run '%s' ./permissions)", seed, seed, t.Name())
	return seed
}

// node is a minimal stand-in for the consensus loop: it polls completions,
// routes them by tag, steps the detector and the manager and, when
// autoLead is set, requests permission when its detector names it leader.
type node struct {
	id       rdma.NodeID
	fab      *sim.Node
	det      *pullscore.Detector
	perm     *permissions.Manager
	autoLead bool
	leading  bool
	requests int
	buf      [16]rdma.Completion
	// writes collects completions of the test's log writes.
	writes   []rdma.Completion
	switches []permissions.Switch
}

func (n *node) Step(now int64) int64 {
	for {
		k := n.fab.Poll(n.buf[:])
		for _, c := range n.buf[:k] {
			switch c.ID >> 56 {
			case pullscore.Tag:
				n.det.OnCompletion(c)
			case permissions.Tag:
				n.perm.OnCompletion(c)
			case consensusTag:
				n.writes = append(n.writes, c)
			}
		}
		if k < len(n.buf) {
			break
		}
	}
	a := n.det.Step(now)
	b := n.perm.Step(now)
	if n.autoLead {
		l, ok := n.det.Leader()
		switch {
		case ok && l == n.id && !n.leading:
			n.leading = true
			n.requests++
			n.perm.Request(n.fab.Now())
		case (!ok || l != n.id) && n.leading:
			n.leading = false
			n.perm.Abandon()
		}
	}
	return min(a, b)
}

type cluster struct {
	// wrap, when set for a node, is the fabric its detector and manager
	// see instead of the simulator node itself.
	wrap map[rdma.NodeID]rdma.Fabric
	t    *testing.T
	w    *sim.World
	ids  []rdma.NodeID
	n    map[rdma.NodeID]*node
	cfg  permissions.Config
	det  pullscore.Config
}

func newCluster(t *testing.T, size int, seed uint64, autoLead bool, wrap ...func(*sim.Node) rdma.Fabric) *cluster {
	t.Helper()
	w := sim.New(seed, sim.DefaultConfig())
	c := &cluster{wrap: map[rdma.NodeID]rdma.Fabric{}, t: t, w: w, n: map[rdma.NodeID]*node{}, cfg: permissions.DefaultConfig(), det: pullscore.DefaultConfig()}
	for i := 1; i <= size; i++ {
		c.ids = append(c.ids, rdma.NodeID(i))
		w.AddNode(rdma.NodeID(i), regionBytes)
	}
	// Bootstrap grants everyone everything on the replication plane; the
	// managers must revoke it before anyone leads.
	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll})
	for i, fn := range wrap {
		if fn != nil {
			c.wrap[c.ids[i]] = fn(w.Node(c.ids[i]))
		}
	}
	for _, id := range c.ids {
		c.start(id, autoLead)
	}
	return c
}

func (c *cluster) peers(id rdma.NodeID) []rdma.NodeID {
	var out []rdma.NodeID
	for _, p := range c.ids {
		if p != id {
			out = append(out, p)
		}
	}
	return out
}

// start installs a fresh detector and manager on id (boot or restart).
func (c *cluster) start(id rdma.NodeID, autoLead bool) {
	c.t.Helper()
	var f rdma.Fabric = c.w.Node(id)
	if c.wrap[id] != nil {
		f = c.wrap[id]
	}
	d, err := pullscore.NewDetector(f, id, c.peers(id), hbOffset, scratchOffset, c.det)
	if err != nil {
		c.t.Fatal(err)
	}
	nd := &node{id: id, fab: c.w.Node(id), det: d, autoLead: autoLead}
	cfg := c.cfg
	cfg.OnSwitch = func(s permissions.Switch) { nd.switches = append(nd.switches, s) }
	nd.perm, err = permissions.New(f, id, c.peers(id), permOffset, cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.n[id] = nd
	c.w.SetStepper(id, nd)
}

func (c *cluster) run(ns int64) { c.w.RunFor(ns) }

func (c *cluster) until(what string, limitNs int64, pred func() bool) {
	c.t.Helper()
	if !c.w.RunUntil(pred, c.w.Now()+limitNs) {
		c.t.Fatalf("t=%d: %s did not happen within %d ns", c.w.Now(), what, limitNs)
	}
}

// write posts one 64-byte log write from -> to on the replication plane and
// returns its status once it completes.
func (c *cluster) write(from, to rdma.NodeID) rdma.Status {
	c.t.Helper()
	n := c.n[from]
	id := uint64(consensusTag)<<56 | uint64(len(n.writes))<<16 | uint64(to)
	conn := n.fab.Conn(to, rdma.PlaneReplication)
	if _, err := conn.Post([]rdma.WorkRequest{{ID: id, Op: rdma.OpWrite, LocalOffset: logOffset, RemoteOffset: logOffset, Length: 64}}); err != nil {
		c.t.Fatalf("post %d->%d: %v", from, to, err)
	}
	var st rdma.Status
	c.until("write completion", 10_000_000, func() bool {
		for _, w := range n.writes {
			if w.ID == id {
				st = w.Status
				return true
			}
		}
		return false
	})
	return st
}

// holderEverywhere reports whether every node in nodes grants want.
func (c *cluster) holderEverywhere(want rdma.NodeID, nodes ...rdma.NodeID) bool {
	for _, id := range nodes {
		if h, ok := c.n[id].perm.Holder(); !ok || h != want {
			return false
		}
	}
	return true
}

// checkAccess verifies the replication connections of follower f: holder
// gets LeaderAccess, everyone else ReadAccess.
func (c *cluster) checkAccess(f, holder rdma.NodeID) {
	c.t.Helper()
	for _, p := range c.peers(f) {
		want := permissions.ReadAccess
		if p == holder {
			want = permissions.LeaderAccess
		}
		conn := c.w.Node(f).Conn(p, rdma.PlaneReplication)
		if conn.State() != rdma.ConnReady || conn.RemoteAccess() != want {
			c.t.Fatalf("node %d's connection to %d: %v %v, want ready %v", f, p, conn.State(), conn.RemoteAccess(), want)
		}
	}
}

// bootLeader boots with autoLead and waits until node 1 holds a majority.
func bootLeader(t *testing.T, size int, seed uint64, wrap ...func(*sim.Node) rdma.Fabric) *cluster {
	c := newCluster(t, size, seed, true, wrap...)
	c.until("node 1 granted by everyone", 5_000_000, func() bool {
		n := c.n[1]
		return n.leading && n.perm.Granted(n.perm.Epoch()) == size-1
	})
	return c
}

func TestBootLeaderGetsPermission(t *testing.T) {
	for _, size := range []int{3, 5} {
		c := bootLeader(t, size, testSeed(t, 1))
		if !c.holderEverywhere(1, c.ids...) {
			t.Fatalf("size %d: holders disagree", size)
		}
		for _, f := range c.peers(1) {
			c.checkAccess(f, 1)
			if st := c.write(1, f); st != rdma.StatusSuccess {
				t.Fatalf("size %d: leader's write to %d: %v", size, f, st)
			}
		}
		// Before any grant, a non-leader cannot write a follower's log.
		if st := c.write(2, 3); st != rdma.StatusRemoteInvalidRequest {
			t.Fatalf("size %d: non-leader write 2->3: %v, want remote invalid request", size, st)
		}
		for _, id := range c.ids {
			if c.n[id].requests != map[bool]int{true: 1, false: 0}[id == 1] {
				t.Fatalf("size %d: node %d requested %d times", size, id, c.n[id].requests)
			}
		}
	}
}

// TestSwitchRevokesOldLeader: node 2 takes over from node 1; after node 2
// has a majority its writes succeed, node 1's fail with remote invalid
// request, and the broken connections are repaired by Reset.
func TestSwitchRevokesOldLeader(t *testing.T) {
	for _, size := range []int{3, 5} {
		c := bootLeader(t, size, testSeed(t, 2))
		for _, n := range c.n {
			n.autoLead = false // the test drives the takeover by hand
		}
		oldEpoch := c.n[1].perm.Epoch()
		if c.n[1].perm.Yielded(oldEpoch) || !c.n[1].perm.HasMajority(oldEpoch) {
			t.Fatalf("size %d: leader 1 has yielded before any other request", size)
		}
		start := c.w.Now()
		epoch := c.n[2].perm.Request(start)
		c.until("majority for node 2", 2_000_000, func() bool { return c.n[2].perm.HasMajority(epoch) })
		majorityAt := c.w.Now() - start
		c.until("every peer grants node 2", 2_000_000, func() bool { return c.n[2].perm.Granted(epoch) == size-1 })
		t.Logf("size %d: request -> majority %.1f µs, -> all %.1f µs", size, float64(majorityAt)/1e3, float64(c.w.Now()-start)/1e3)
		if !c.holderEverywhere(2, c.peers(2)...) {
			t.Fatalf("size %d: not every peer names 2 holder", size)
		}
		// The old leader granted 2 as well: its own epoch is gone, even
		// though its peers' acks of it are still in its area.
		if !c.n[1].perm.Yielded(oldEpoch) || c.n[1].perm.Granted(oldEpoch) != 0 ||
			c.n[1].perm.HasMajority(oldEpoch) || c.n[1].perm.GrantedBy(3, oldEpoch) {
			t.Fatalf("size %d: old leader still counts grants of epoch %d after yielding", size, oldEpoch)
		}
		if h, ok := c.n[2].perm.Holder(); !ok || h != 2 {
			t.Fatalf("size %d: requester's own holder %d %v", size, h, ok)
		}
		for _, f := range c.peers(2) {
			c.checkAccess(f, 2)
			sw := c.n[f].switches[len(c.n[f].switches)-1]
			if sw.Requester != 2 || sw.Epoch != epoch || !sw.FastPath || sw.DurationNs <= 0 {
				t.Fatalf("size %d: node %d's last switch %+v", size, f, sw)
			}
			t.Logf("size %d: node %d switched in %.1f µs (fast path)", size, f, float64(sw.DurationNs)/1e3)
		}
		for _, f := range c.peers(2) {
			if st := c.write(2, f); st != rdma.StatusSuccess {
				t.Fatalf("size %d: new leader's write to %d: %v", size, f, st)
			}
		}
		// The old leader is cut off at every follower.
		if st := c.write(1, 3); st != rdma.StatusRemoteInvalidRequest {
			t.Fatalf("size %d: old leader's write 1->3: %v, want remote invalid request", size, st)
		}
		// Both ends of 1<->3 went to ERROR; the managers repair them.
		c.until("1<->3 repaired", 1_000_000, func() bool {
			return c.w.Node(1).Conn(3, rdma.PlaneReplication).State() == rdma.ConnReady &&
				c.w.Node(3).Conn(1, rdma.PlaneReplication).State() == rdma.ConnReady
		})
		if c.n[1].perm.Stats().Repairs == 0 || c.n[3].perm.Stats().Repairs == 0 {
			t.Fatalf("size %d: repairs 1:%d 3:%d", size, c.n[1].perm.Stats().Repairs, c.n[3].perm.Stats().Repairs)
		}
		c.checkAccess(3, 2)
		// Repaired, not re-granted: still refused, and the leader unharmed.
		if st := c.write(1, 3); st != rdma.StatusRemoteInvalidRequest {
			t.Fatalf("size %d: old leader's second write 1->3: %v", size, st)
		}
		if st := c.write(2, 3); st != rdma.StatusSuccess {
			t.Fatalf("size %d: new leader's write after the repair: %v", size, st)
		}
	}
}

// TestFallbackResetsConnectionInError: a follower whose connection to the
// old leader is already in ERROR when a request arrives switches it with
// Reset, and reports the fallback.
func TestFallbackResetsConnectionInError(t *testing.T) {
	c := bootLeader(t, 3, testSeed(t, 3))
	for _, n := range c.n {
		n.autoLead = false
	}
	c.w.Pause(3) // 3 cannot repair while paused; its NIC still answers
	epoch := c.n[2].perm.Request(c.w.Now())
	c.until("node 1 grants 2", 2_000_000, func() bool { return c.n[2].perm.GrantedBy(1, epoch) })
	// 3 has not served the request yet, so 2's write to 3 is refused and
	// puts both ends of 2<->3 in ERROR.
	if st := c.write(2, 3); st != rdma.StatusRemoteInvalidRequest {
		t.Fatalf("write 2->3 before 3 granted: %v", st)
	}
	if c.w.Node(3).Conn(2, rdma.PlaneReplication).State() != rdma.ConnError {
		t.Fatal("3's end towards 2 not in ERROR")
	}
	c.w.Resume(3)
	c.until("node 3 grants 2", 3_000_000, func() bool { return c.n[2].perm.GrantedBy(3, epoch) })
	sw := c.n[3].switches[len(c.n[3].switches)-1]
	if sw.FastPath || sw.Resets != 1 || sw.Failures != 0 || sw.Requester != 2 {
		t.Fatalf("switch at 3: %+v, want one Reset fallback", sw)
	}
	if st := c.n[3].perm.Stats(); st.Fallback != 1 {
		t.Fatalf("stats at 3: %+v", st)
	}
	t.Logf("fallback switch at node 3: %.1f µs (1 reset + 1 fast revoke)", float64(sw.DurationNs)/1e3)
	c.checkAccess(3, 2)
	// 2's own end towards 3 went to ERROR too and is repaired by 2.
	c.until("2's end repaired", 2_000_000, func() bool {
		return c.w.Node(2).Conn(3, rdma.PlaneReplication).State() == rdma.ConnReady
	})
	if st := c.write(2, 3); st != rdma.StatusSuccess {
		t.Fatalf("write 2->3 after the fallback: %v", st)
	}
}

// TestFailoverWithPermission: the leader crashes or pauses; the next node
// is named leader everywhere, requests, and gets a majority. Reports the
// split between detection and switch.
func TestFailoverWithPermission(t *testing.T) {
	faults := []struct {
		name  string
		apply func(*sim.World)
	}{
		{"crash", func(w *sim.World) { w.Crash(1, false) }},
		{"pause", func(w *sim.World) { w.Pause(1) }},
	}
	for _, fault := range faults {
		for _, size := range []int{3, 5} {
			c := bootLeader(t, size, testSeed(t, 4))
			c.run(1_000_000) // scores reach ScoreMax
			// The survivors' slowest detector bound in use (measured, not
			// configured: node 2 needs a majority's views), three periods of
			// sampling phase, a paused peer's last beat and view exchange,
			// and a read.
			var bound int64
			for _, id := range c.peers(1) {
				d := c.n[id].det
				bound = max(bound, d.FailBoundNs()+3*d.PeriodNs()+80_000)
			}
			start := c.w.Now()
			fault.apply(c.w)
			c.until("node 2 leading", 2_000_000, func() bool { return c.n[2].leading })
			detected := c.w.Now() - start
			c.until("node 2 majority", 2_000_000, func() bool { return c.n[2].perm.HasMajority(c.n[2].perm.Epoch()) })
			total := c.w.Now() - start
			if detected > bound {
				t.Fatalf("%s size %d: detection took %d ns, bound %d", fault.name, size, detected, bound)
			}
			// The requester's own revoke overlaps the followers' revoke and
			// grant (80 µs each in the simulator); add a write each way and
			// the pickup delay.
			if switchNs := total - detected; switchNs > 2*80_000+60_000 {
				t.Fatalf("%s size %d: permission switch took %d ns", fault.name, size, switchNs)
			}
			t.Logf("%s size %d: fault -> leader named %.1f µs, -> majority granted %.1f µs (switch %.1f µs)",
				fault.name, size, float64(detected)/1e3, float64(total)/1e3, float64(total-detected)/1e3)
			for _, f := range c.peers(1)[1:] {
				if st := c.write(2, f); st != rdma.StatusSuccess {
					t.Fatalf("%s size %d: new leader's write to %d: %v", fault.name, size, f, st)
				}
			}
			if fault.name == "pause" {
				// The paused leader wakes up and writes as if nothing
				// happened: refused.
				c.w.Resume(1)
				if st := c.write(1, 3); st != rdma.StatusRemoteInvalidRequest {
					t.Fatalf("size %d: resumed old leader's write: %v", size, st)
				}
			}
		}
	}
}

// TestDeposedLeaderFloodIsBackedOff: a deposed leader that keeps writing
// breaks the follower's connection each time it is repaired; the repairs
// (540 µs of CPU each) back off instead of following every write.
func TestDeposedLeaderFloodIsBackedOff(t *testing.T) {
	c := bootLeader(t, 3, testSeed(t, 8))
	for _, n := range c.n {
		n.autoLead = false
	}
	epoch := c.n[2].perm.Request(c.w.Now())
	c.until("every peer grants node 2", 2_000_000, func() bool { return c.n[2].perm.Granted(epoch) == 2 })
	before := c.n[3].perm.Stats().Repairs
	const floodNs = 30_000_000
	end := c.w.Now() + floodNs
	var flood func()
	wr := []rdma.WorkRequest{{ID: uint64(consensusTag) << 56, Op: rdma.OpWrite, LocalOffset: logOffset, RemoteOffset: logOffset, Length: 64}}
	flood = func() {
		if c.w.Now() >= end {
			return
		}
		if conn := c.w.Node(1).Conn(3, rdma.PlaneReplication); conn.State() == rdma.ConnReady {
			conn.Post(wr)
		}
		c.w.Schedule(c.w.Now()+10_000, flood)
	}
	flood()
	c.run(floodNs)
	repairs := c.n[3].perm.Stats().Repairs - before
	// Gaps 1, 2, 4, 8, 16 ms fit five repairs in 30 ms (plus one while
	// the two ends' repairs line up); a fixed 1 ms gap would allow 30.
	if repairs == 0 || repairs > 7 {
		t.Fatalf("follower repaired %d times under a 30 ms flood", repairs)
	}
	t.Logf("30 ms flood by the deposed leader: %d repairs at the follower", repairs)
	// Once the flood stops, the last backed-off repair brings it back.
	c.until("3's end to 1 repaired after the flood", 64*c.cfg.RepairIntervalNs, func() bool {
		return c.w.Node(3).Conn(1, rdma.PlaneReplication).State() == rdma.ConnReady
	})
	c.checkAccess(3, 2)
	if st := c.write(2, 3); st != rdma.StatusSuccess {
		t.Fatalf("leader's write during the flood's aftermath: %v", st)
	}
}

// TestPartialConnectivityNoPingPong: 1 and 2 lose each other but both
// reach 3. Neither the leader choice nor the permission moves: node 2 never
// requests, node 3 keeps granting 1.
func TestPartialConnectivityNoPingPong(t *testing.T) {
	for _, size := range []int{3, 5} {
		c := bootLeader(t, size, testSeed(t, 5))
		c.w.CutBoth(1, 2)
		switchesAt3 := len(c.n[3].switches)
		for end := c.w.Now() + 10_000_000; c.w.Now() < end; {
			c.run(50_000)
			for _, id := range c.ids {
				if l, ok := c.n[id].det.Leader(); !ok || l != 1 {
					t.Fatalf("size %d t=%d: node %d names %d %v", size, c.w.Now(), id, l, ok)
				}
			}
		}
		for _, id := range c.ids {
			want := 0
			if id == 1 {
				want = 1
			}
			if c.n[id].requests != want {
				t.Fatalf("size %d: node %d requested %d times under the cut, want %d", size, id, c.n[id].requests, want)
			}
		}
		if len(c.n[3].switches) != switchesAt3 || !c.holderEverywhere(1, c.peers(2)...) {
			t.Fatalf("size %d: node 3 switched %d times under the cut", size, len(c.n[3].switches)-switchesAt3)
		}
		if !c.n[1].perm.HasMajority(c.n[1].perm.Epoch()) {
			t.Fatalf("size %d: leader 1 lost its majority", size)
		}
		if st := c.write(1, 3); st != rdma.StatusSuccess {
			t.Fatalf("size %d: leader's write to 3 under the cut: %v", size, st)
		}
	}
}

// TestRestartedFollowerNeedsNewRequest: a follower that restarts (region
// kept) does not re-serve the old request in its area; the leader's
// writes to it fail until the leader requests again, and peers that already
// grant the leader answer the new epoch without touching a connection.
func TestRestartedFollowerNeedsNewRequest(t *testing.T) {
	c := bootLeader(t, 3, testSeed(t, 6))
	for _, n := range c.n {
		n.autoLead = false
	}
	c.w.Crash(3, true)
	c.run(100_000)
	c.w.Restart(3)
	c.start(3, false)
	c.run(2_000_000)
	if h, ok := c.n[3].perm.Holder(); ok {
		t.Fatalf("restarted node 3 grants %d from a stale request", h)
	}
	c.checkAccess(3, 0)
	if st := c.write(1, 3); st == rdma.StatusSuccess {
		t.Fatal("leader wrote a restarted follower that never granted it")
	}
	switchesAt2 := len(c.n[2].switches)
	epoch := c.n[1].perm.Request(c.w.Now())
	if epoch <= c.n[1].switches[0].Epoch {
		t.Fatalf("new epoch %d not above the first %d", epoch, c.n[1].switches[0].Epoch)
	}
	c.until("both grant the new epoch", 3_000_000, func() bool { return c.n[1].perm.Granted(epoch) == 2 })
	if sw := c.n[2].switches[switchesAt2]; sw.DurationNs != 0 || !sw.FastPath {
		t.Fatalf("node 2 already granted 1 but its switch was %+v", sw)
	}
	c.checkAccess(3, 1)
	c.until("1's end to 3 ready", 2_000_000, func() bool {
		return c.w.Node(1).Conn(3, rdma.PlaneReplication).State() == rdma.ConnReady
	})
	if st := c.write(1, 3); st != rdma.StatusSuccess {
		t.Fatalf("leader's write to re-granted 3: %v", st)
	}
}

func TestManagerStepDoesNotAllocate(t *testing.T) {
	c := bootLeader(t, 5, testSeed(t, 7))
	allocs := testing.AllocsPerRun(100, func() { c.run(40_000) })
	if allocs != 0 {
		t.Fatalf("steady state allocates %.1f times per 40 µs", allocs)
	}
}

var errStuck = errors.New("test: access change refused")

// stuckFabric is a simulator node whose replication connections to the
// peers in stuck refuse SetRemoteAccess and Reset, as a wedged driver would.
type stuckFabric struct {
	*sim.Node
	stuck map[rdma.NodeID]bool
}

func (f *stuckFabric) Conn(peer rdma.NodeID, plane rdma.Plane) rdma.Conn {
	c := f.Node.Conn(peer, plane)
	if c == nil || plane != rdma.PlaneReplication {
		return c
	}
	return stuckConn{Conn: c, f: f}
}

type stuckConn struct {
	rdma.Conn
	f *stuckFabric
}

func (c stuckConn) SetRemoteAccess(a rdma.Access) error {
	if c.f.stuck[c.Peer()] {
		return errStuck
	}
	return c.Conn.SetRemoteAccess(a)
}

func (c stuckConn) Reset(a rdma.Access) error {
	if c.f.stuck[c.Peer()] {
		return errStuck
	}
	return c.Conn.Reset(a)
}

// TestNoAckWhileOldLeaderCanStillWrite: a follower that cannot revoke the
// old leader's write access must not acknowledge the new request, or the
// requester would count a grant while the old leader can still write that
// follower's log. It acknowledges once the revocation succeeds.
func TestNoAckWhileOldLeaderCanStillWrite(t *testing.T) {
	var f3 *stuckFabric
	c := bootLeader(t, 3, testSeed(t, 9), nil, nil, func(n *sim.Node) rdma.Fabric {
		f3 = &stuckFabric{Node: n, stuck: map[rdma.NodeID]bool{}}
		return f3
	})
	for _, n := range c.n {
		n.autoLead = false
	}
	f3.stuck[1] = true
	epoch := c.n[2].perm.Request(c.w.Now())
	c.until("node 1 grants 2", 2_000_000, func() bool { return c.n[2].perm.GrantedBy(1, epoch) })
	c.run(3_000_000)
	if c.n[2].perm.GrantedBy(3, epoch) {
		t.Fatal("node 3 acknowledged while node 1 could still write its log")
	}
	if st := c.write(1, 3); st != rdma.StatusSuccess {
		t.Fatalf("precondition: node 1 should still reach 3's log, got %v", st)
	}
	st := c.n[3].perm.Stats()
	if st.AcksHeld != 1 || st.Incomplete != 1 || st.RepairsFailed == 0 {
		t.Fatalf("stats at 3: %+v", st)
	}
	if h, _ := c.n[3].perm.Holder(); h != 2 {
		t.Fatalf("node 3's holder %d, want 2 (decided, not yet acknowledged)", h)
	}
	f3.stuck[1] = false
	c.until("node 3 acknowledges after the revocation", 64*c.cfg.RepairIntervalNs, func() bool {
		return c.n[2].perm.GrantedBy(3, epoch)
	})
	c.checkAccess(3, 2)
	if st := c.write(1, 3); st != rdma.StatusRemoteInvalidRequest {
		t.Fatalf("old leader's write after the revocation: %v", st)
	}
}
