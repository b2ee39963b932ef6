package consensus

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// handoverGap runs clients against a cluster, then either transfers
// leadership to a random follower or crashes the leader, and returns how
// long after that event the first operation was acknowledged by another
// replica (the clients' unavailability window). The run then ends as a
// swarm run does: every acknowledged operation in the log, the history
// (reads included) linearizable, the replicas converged.
func handoverGap(t *testing.T, seed uint64, crash bool) int64 {
	rng := rand.New(rand.NewPCG(seed, 0x7a5f))
	n := 3
	if rng.IntN(3) == 0 {
		n = 5
	}
	c := newCluster(t, seed, n, nil)
	s := newSwarm(t, c)
	s.reads = true
	fail := s.failer(seed, "handover")
	s.watch(fail)
	if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
		fail("no leader 20 ms after boot")
	}
	for i := 0; i < s.clients; i++ {
		s.issue(i)
	}
	c.w.RunFor(int64(2_000_000 + rng.IntN(1_000_000)))
	old, ok := c.leader()
	if !ok {
		fail("no leader before the event")
	}
	to := old
	for to == old {
		to = c.ids[rng.IntN(n)]
	}
	var res error = errors.New("no outcome")
	c.onTransfer = func(node, _ rdma.NodeID, err error) {
		if node == old {
			res = err
		}
	}
	at := c.w.Now()
	if crash {
		s.crash(old, 5_000_000)
	} else if err := c.reps[old].StartTransfer(to); err != nil {
		fail("StartTransfer: %v", err)
	}
	first := int64(-1)
	if !c.w.RunUntil(func() bool {
		for _, op := range s.ops {
			if op.acked && op.node != old && op.ret >= at {
				first = op.ret
				return true
			}
		}
		return false
	}, at+50_000_000) {
		fail("nothing acknowledged by another replica within 50 ms (crash %v)", crash)
	}
	if !crash {
		if res != nil {
			fail("transfer %d -> %d: %v", old, to, res)
		}
		if l, ok := c.leader(); !ok || l != to {
			fail("transfer %d -> %d: leader is %d (%v)", old, to, l, ok)
		}
	}
	s.finish(seed, 60_000_000, fail)
	return first - at
}

// TestTransferLeadershipFasterThanFailover: over many seeds (3 or 5
// replicas, clients issuing puts, gets and reads), a transfer to a
// random follower succeeds, nothing acknowledged is lost, the history
// stays linearizable, and the clients' unavailability window is shorter
// than after a crash of the leader in the same runs (median), which
// waits for the detector.
func TestTransferLeadershipFasterThanFailover(t *testing.T) {
	var (
		mu          sync.Mutex
		xfer, crash []int64
	)
	t.Run("runs", func(t *testing.T) {
		sim.Seeds(t, seeds(50), func(t *testing.T, seed uint64) {
			t.Parallel()
			x, c := handoverGap(t, seed, false), handoverGap(t, seed, true)
			mu.Lock()
			xfer, crash = append(xfer, x), append(crash, c)
			mu.Unlock()
		})
	})
	if t.Failed() || len(xfer) == 0 {
		return
	}
	slices.Sort(xfer)
	slices.Sort(crash)
	pct := func(v []int64, p float64) time.Duration { return time.Duration(v[int(p*float64(len(v)-1))]) }
	t.Logf("unavailability over %d seeds: transfer p50 %v p99 %v max %v; crash failover p50 %v p99 %v",
		len(xfer), pct(xfer, 0.5), pct(xfer, 0.99), pct(xfer, 1), pct(crash, 0.5), pct(crash, 0.99))
	if pct(xfer, 0.5) >= pct(crash, 0.5) {
		t.Errorf("transfer p50 %v is not below crash failover p50 %v", pct(xfer, 0.5), pct(crash, 0.5))
	}
}

// TestTransferLeadershipAPI: the blocking form from another goroutine,
// over the in-process fabric in real time: to a follower (which then
// leads), to itself (a no-op), to a non-member (refused, naming the
// field), from a follower (NotLeaderError), after Close (ErrClosed).
func TestTransferLeadershipAPI(t *testing.T) {
	reps, stop := inprocCluster(t)
	defer stop()
	var leader *Replica
	deadline := time.Now().Add(10 * time.Second)
	for leader == nil && time.Now().Before(deadline) {
		for _, r := range reps {
			if r.IsLeader() {
				leader = r
			}
		}
		time.Sleep(time.Millisecond)
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.TransferLeadership(ctx, leader.Self()); err != nil {
		t.Fatalf("transfer to itself: %v", err)
	}
	if err := leader.TransferLeadership(ctx, 99); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("transfer to a non-member: %v", err)
	}
	var to *Replica
	for _, r := range reps {
		if r != leader {
			to = r
			if err := r.TransferLeadership(ctx, leader.Self()); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("transfer from a follower: %v, want ErrNotLeader", err)
			}
		}
	}
	// The target leads once its election ends; on a loaded host the
	// sticky rule may still hand leadership back later, so only its
	// first term is checked. TransferLeadership returns once the target
	// holds the log; the target's election can still fail on a loaded
	// host (its permission request unanswered in time), and then the
	// handover is not repeated by itself: the caller asks again, from
	// whoever leads.
	var err error
	from := leader
	for attempt := 0; attempt < 5 && to.Stats().LeaderTerms == 0 && ctx.Err() == nil; attempt++ {
		if terr := from.TransferLeadership(ctx, to.Self()); terr != nil {
			// The target did not catch up within four stall bounds, or the
			// leadership moved meanwhile (this host stalls the replicas);
			// anything else is a defect.
			if !errors.Is(terr, ErrTransferTimeout) && !errors.Is(terr, ErrLeadershipLost) && !errors.Is(terr, ErrNotLeader) {
				t.Fatalf("transfer %d -> %d: %v", from.Self(), to.Self(), terr)
			}
			err = terr
		}
		for until := time.Now().Add(time.Second); ctx.Err() == nil && time.Now().Before(until); {
			if to.IsLeader() {
				if _, err = to.Propose(ctx, []byte("after")); err == nil || to.Stats().LeaderTerms > 0 {
					break
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
		for _, r := range reps {
			if r.IsLeader() && r != to {
				from = r
			}
		}
	}
	if to.Stats().LeaderTerms == 0 {
		t.Fatalf("the target %d never led after the transfer (last propose: %v)", to.Self(), err)
	}
	to.Close()
	if err := to.TransferLeadership(ctx, leader.Self()); !errors.Is(err, ErrClosed) {
		t.Fatalf("transfer after Close: %v, want ErrClosed", err)
	}
}
