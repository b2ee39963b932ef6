package consensus

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// Regression scenarios for four bugs an outside adversarial suite found
// and the swarm did not. Each runs over 200 seeds, which vary the timing,
// and checks what the swarm checks: as it goes (swarm.watch), the
// invariants after every event, acknowledgements, and no fence of a
// replica whose memory no fault damaged; once the faults stop
// (swarm.finish), a new commit, convergence, every acknowledged operation
// in the log and a linearizable history.

// regressionLivenessNs bounds how long after its faults stop a scenario's
// group must commit again.
const regressionLivenessNs = 60_000_000

// runRegression runs one seed of a scenario on n replicas (config changed
// by mutate): clients run from the first leader on, inject applies the
// faults and runs the world meanwhile (recording in s.damaged the
// replicas whose memory it changes), then finish checks the outcome.
func runRegression(t *testing.T, seed uint64, n int, mutate func(*Config), inject func(s *swarm, rng *rand.Rand)) {
	c := newCluster(t, seed, n, mutate)
	s := newSwarm(t, c)
	if c.cfg.MaxPayloadBytes > c.cfg.MaxWriteBytes {
		// Commands long enough to fill slots of several writes.
		s.pad = c.cfg.MaxProposalBytes() - kvCmdBytes
	}
	fail := s.failer(seed, t.Name())
	s.watch(fail)
	if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
		fail("no leader 20 ms after boot")
	}
	for i := range s.clients {
		s.issue(i)
	}
	c.w.RunFor(300_000)
	inject(s, c.w.Rand(91))
	s.finish(seed, regressionLivenessNs, fail)
}

// others are the members but id.
func others(c *cluster, id rdma.NodeID) []rdma.NodeID {
	var o []rdma.NodeID
	for _, m := range c.ids {
		if m != id {
			o = append(o, m)
		}
	}
	return o
}

// Bug A: a deposed leader commits its own entries because it took a
// follower's applied index, advanced by its successor's entries, for an
// acknowledgement. Three replicas; the leader's inbound links are cut one
// way, one follower's first (its writes still land; acks and reads die);
// the other follower takes over and commits while clients reach both
// leaders; the cuts heal while the deposed leader still believes it leads
// (a 10 ms election timeout outlasts the 5.5 to 8.5 ms cut), so it reads
// the followers' headers again.
func TestDeposedLeaderDoesNotCommitFromHeader200Seeds(t *testing.T) {
	sim.Seeds(t, seeds(200), func(t *testing.T, seed uint64) {
		t.Parallel()
		runRegression(t, seed, 3, func(cfg *Config) { cfg.ElectionTimeoutNs = slowGiveUpNs }, func(s *swarm, rng *rand.Rand) {
			c, w := s.c, s.c.w
			l, _ := c.leader()
			f := others(c, l)
			w.Cut(f[1], l)
			w.RunFor(rng.Int64N(1_000_000))
			w.Cut(f[0], l)
			w.RunFor(5_500_000 + rng.Int64N(3_000_000))
			w.HealNetwork()
		})
	})
}

// Bug B: one damaged word lost a committed entry. Three replicas: a
// follower is cut off while the leader commits more than was in flight
// with the other follower (the victim); the leader pauses (its memory
// stays); one bit flips in the index, length or canary word of one of the
// last entries the victim committed, words its checksum does not protect;
// the lagging follower, which has the lower id, is healed and takes over.
// A slot that reads as neither complete nor provably empty must not count
// as never accepted: the entry must survive.
func TestDamagedSlotWordIsNotEmpty200Seeds(t *testing.T) {
	sim.Seeds(t, seeds(200), func(t *testing.T, seed uint64) {
		t.Parallel()
		// The log holds what the leader commits while the follower is
		// away, so that follower lags but can still lead.
		runRegression(t, seed, 3, func(cfg *Config) { cfg.LogSlots = 1024 }, func(s *swarm, rng *rand.Rand) {
			c, w := s.c, s.c.w
			// The detector names the lowest live id: the lagging
			// replica must be the one to take over.
			leader, _ := c.leader()
			f := others(c, leader)
			lag, victim := f[0], f[1]
			w.Partition([]rdma.NodeID{lag}, []rdma.NodeID{leader, victim})
			// Past the transport timeout, the writes the leader had
			// in flight to the lagging follower are dropped, not
			// delivered when the partition heals.
			w.RunFor(w.Config().TransportTimeoutNs + 500_000 + rng.Int64N(500_000))
			w.Pause(leader)
			i := uint64(c.reps[victim].CommitIndex()) - uint64(rng.IntN(4))
			name := []string{"index", "length", "canary"}[rng.IntN(3)]
			var at word
			for _, wd := range s.slotWords(victim, i) {
				if wd.name == name {
					at = wd
				}
			}
			s.faults = append(s.faults, fmt.Sprintf("%d flip node %d slot %d %s", w.Now(), victim, i, s.flip(victim, at)))
			w.HealNetwork()
			w.RunFor(3_000_000 + rng.Int64N(2_000_000))
			w.Resume(leader)
		})
	})
}

// Bug C1: a healthy leader fenced itself on the holes a snapshot left in
// its log. Five replicas. Follower X (the lowest id after the leader's)
// pauses: its NIC keeps taking the leader's slots, it applies none.
// Follower Y is cut off three quarters of a log later, X nearly a log
// later; the leader commits on with the other two. X's partition heals
// while X is still paused, so the snapshot the leader pushes restores
// before X applies anything: X's log holds the old slots it never
// applied, nothing up to the snapshot, and what followed. The leader
// crashes and Y's partition heals; X leads and catches Y up from Y's
// applied index, across the hole. A hole below the snapshot index is not
// corruption: X must not fence itself.
func TestSnapshotHolesDoNotFenceLeader200Seeds(t *testing.T) {
	sim.Seeds(t, seeds(200), func(t *testing.T, seed uint64) {
		t.Parallel()
		runRegression(t, seed, 5, nil, func(s *swarm, rng *rand.Rand) {
			c, w := s.c, s.c.w
			l, _ := c.leader()
			f := others(c, l)
			x, y := f[0], f[1]
			rest := []rdma.NodeID{l, f[2], f[3]}
			slots := Index(c.cfg.LogSlots)
			commitReaches := func(i Index, what string) {
				if !w.RunUntil(func() bool { return c.reps[l].CommitIndex() >= i }, w.Now()+20_000_000) {
					t.Fatalf("leader %d did not commit to %d (%s)", l, i, what)
				}
			}
			ax := c.reps[x].AppliedIndex()
			w.Pause(x)
			commitReaches(ax+slots*3/4+Index(rng.IntN(int(slots/8))), "before cutting Y off")
			w.Partition([]rdma.NodeID{y}, append([]rdma.NodeID{x}, rest...))
			commitReaches(ax+slots-4, "before cutting X off")
			w.Partition([]rdma.NodeID{x}, rest)
			commitReaches(c.reps[l].CommitIndex()+slots/4+Index(rng.IntN(int(slots/8))), "past X's log")
			sent := c.reps[l].Stats().SnapshotsSent
			for _, o := range rest {
				w.Heal(x, o)
				w.Heal(o, x)
			}
			if !w.RunUntil(func() bool { return c.reps[l].Stats().SnapshotsSent > sent }, w.Now()+20_000_000) {
				t.Fatalf("leader %d sent X no snapshot", l)
			}
			w.RunFor(100_000) // the snapshot lands
			w.Resume(x)
			if !w.RunUntil(func() bool { return c.reps[x].AppliedIndex() > ax+slots }, w.Now()+5_000_000) {
				t.Fatalf("X did not restore the snapshot")
			}
			s.crash(l, 2_000_000+rng.Int64N(2_000_000))
			w.HealNetwork()
			w.RunFor(10_000_000)
		})
	})
}

// Bug C2: an interrupted multi-write rewrite fenced healthy replicas. Five
// replicas with slots four writes long and commands long enough to fill
// them: the leader crashes; its successor rewrites the followers'
// undecided slots under its proposal and crashes once one of them has
// landed in part (or, if none does within 200 us, then). A slot whose
// first bytes are new and whose last bytes are old is a write cut short,
// not corruption: no replica may fence on it. Both crashed replicas
// restart 1 to 3 ms later.
func TestInterruptedRewriteDoesNotFence200Seeds(t *testing.T) {
	sim.Seeds(t, seeds(200), func(t *testing.T, seed uint64) {
		t.Parallel()
		runRegression(t, seed, 5, bigSlots, func(s *swarm, rng *rand.Rand) {
			c, w := s.c, s.c.w
			l, _ := c.leader()
			c.onLeader = func(id rdma.NodeID) {
				c.onLeader = nil
				crash := func() { s.crash(id, 1_000_000+rng.Int64N(2_000_000)) }
				s.whenHalfWritten(id, crash)
				w.Schedule(w.Now()+200_000, crash)
			}
			s.crash(l, 1_000_000+rng.Int64N(2_000_000))
			w.RunFor(5_000_000)
		})
	})
}
