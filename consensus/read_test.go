package consensus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// submitPut proposes put(key, value) through node id and runs the world
// until it is acknowledged; it reports whether it was.
func submitPut(c *cluster, id rdma.NodeID, key uint8, op, value uint64, withinNs int64) bool {
	done := false
	c.onReply = func(node rdma.NodeID, token uint64, _ Index, err error) {
		if token == op && err == nil {
			done = true
		}
	}
	if err := c.reps[id].Submit(encodeKV(make([]byte, kvCmdBytes), true, key, op, value), op); err != nil {
		return false
	}
	return c.w.RunUntil(func() bool { return done }, c.w.Now()+withinNs)
}

// TestStaleReadDeposedLeader: the leader is paused (its driver stalls,
// it still believes it leads), a new leader is elected and commits a
// newer value, and the old leader is asked to read, under its lease
// (LeaseRead) and through its driver (SubmitRead) both while still paused
// and after it resumes. It must refuse or answer the newer value, never
// the one it holds. With and without read leases, 100 seeds each by
// default (-seeds for more).
func TestStaleReadDeposedLeader(t *testing.T) {
	for _, lease := range []int64{0, swarmLeaseNs} {
		t.Run(map[bool]string{false: "index", true: "lease"}[lease > 0], func(t *testing.T) {
			sim.Seeds(t, seeds(100), func(t *testing.T, seed uint64) {
				t.Parallel()
				staleReadRun(t, seed, lease)
			})
		})
	}
}

func staleReadRun(t *testing.T, seed uint64, leaseNs int64) {
	c := newCluster(t, seed, 3, func(cfg *Config) { cfg.ReadLeaseNs = leaseNs })
	c.watch(func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) })
	if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
		t.Fatal("no leader")
	}
	old, _ := c.leader()
	if !submitPut(c, old, 0, 1, 1, 10_000_000) {
		t.Fatal("first put not acknowledged")
	}
	// Let the lease (if any) be renewed, then stall the old leader.
	c.w.RunFor(int64(100_000 + c.w.Rand(1).IntN(200_000)))
	if _, ok := c.reps[old].LeaseRead(); leaseNs > 0 && !ok {
		t.Fatalf("leader %d holds no lease %d ns after a commit", old, leaseNs)
	}
	c.w.Pause(old)
	// The others cannot reach it: the new leader's permission request
	// never lands, so once resumed it still holds its own log and learns
	// nothing locally; only a confirmation round can tell it.
	for _, id := range c.ids {
		if id != old {
			c.w.Cut(id, old)
		}
	}
	var nl rdma.NodeID
	if !c.w.RunUntil(func() bool {
		for _, id := range c.ids {
			if id != old && c.reps[id].IsLeader() {
				nl = id
				return true
			}
		}
		return false
	}, c.w.Now()+50_000_000) {
		t.Fatal("no new leader while the old one is paused")
	}
	if !submitPut(c, nl, 0, 2, 2, 10_000_000) {
		t.Fatal("new leader's put not acknowledged")
	}
	r := c.reps[old]
	if !r.IsLeader() {
		t.Fatalf("old leader %d no longer believes it leads: the scenario did not happen", old)
	}
	stale := func(when string, v uint64) {
		t.Helper()
		if v != 2 {
			t.Fatalf("old leader %d answered a read %s with %d after the new leader %d committed 2", old, when, v, nl)
		}
	}
	if _, ok := r.LeaseRead(); ok {
		stale("under its lease while paused", c.sms[old].data[0])
	}
	answered, failed := 0, 0
	var val uint64
	c.onRead = func(node rdma.NodeID, _ uint64, _ Index, err error) {
		if node != old {
			return
		}
		if err != nil {
			failed++
			return
		}
		answered++
		val = c.sms[old].data[0]
	}
	if err := r.SubmitRead(10); err != nil {
		t.Fatalf("SubmitRead on a replica that believes it leads: %v", err)
	}
	if seed%2 == 0 {
		for _, id := range c.ids {
			c.w.Heal(id, old)
		}
	}
	c.w.Resume(old)
	if _, ok := r.LeaseRead(); ok {
		stale("under its lease once resumed", c.sms[old].data[0])
	}
	if !c.w.RunUntil(func() bool { return answered+failed > 0 }, c.w.Now()+20_000_000) {
		t.Fatal("the read on the old leader was never answered")
	}
	if answered > 0 {
		stale("through its driver", val)
	}
	var nerr *NotLeaderError
	if err := r.SubmitRead(11); err != nil && !errors.As(err, &nerr) {
		t.Fatalf("SubmitRead after deposition: %v, want a NotLeaderError", err)
	}
}

// TestReadBlockingAPI: ReadIndex and Read from goroutines that are not
// the driver's, on the leader (an index at least the committed one) and
// on a follower (a NotLeaderError naming the leader); with and without a
// lease.
func TestReadBlockingAPI(t *testing.T) {
	for _, lease := range []int64{0, 500_000} {
		reps, stop := inprocClusterCfg(t, func(cfg *Config) { cfg.ReadLeaseNs = lease })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// Leadership may move on a loaded host: find the leader again
		// until a proposal commits through it.
		var leader *Replica
		var idx Index
		for ctx.Err() == nil {
			leader = nil
			for _, r := range reps {
				if r.IsLeader() {
					leader = r
				}
			}
			if leader == nil {
				time.Sleep(time.Millisecond)
				continue
			}
			var err error
			if idx, err = leader.Propose(ctx, []byte("x")); err == nil {
				break
			} else if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) {
				t.Fatalf("lease %d: propose: %v", lease, err)
			}
		}
		if ctx.Err() != nil {
			stop()
			t.Fatalf("lease %d: no proposal committed", lease)
		}
		for k := 0; k < 100; k++ {
			ri, err := leader.ReadIndex(ctx)
			if errors.Is(err, ErrNotLeader) {
				break // lost leadership on a loaded host: nothing to check
			}
			if err != nil {
				t.Fatalf("lease %d: ReadIndex: %v", lease, err)
			}
			if ri < idx || leader.AppliedIndex() < ri {
				t.Fatalf("lease %d: ReadIndex %d, committed %d, applied %d", lease, ri, idx, leader.AppliedIndex())
			}
		}
		called := false
		if err := leader.Read(ctx, func() { called = true }); err == nil && !called {
			t.Fatalf("lease %d: Read returned nil without calling fn", lease)
		}
		for _, r := range reps {
			if r == leader {
				continue
			}
			_, err := r.ReadIndex(ctx)
			var nl *NotLeaderError
			if err == nil && r.Stats().LeaderTerms > 0 {
				continue // it took over meanwhile (a loaded host)
			}
			if !errors.As(err, &nl) {
				t.Fatalf("lease %d: ReadIndex on a follower: %v, want NotLeaderError", lease, err)
			}
		}
		cancel()
		stop()
		for _, r := range reps {
			r.Close()
			if _, err := r.ReadIndex(context.Background()); !errors.Is(err, ErrClosed) {
				t.Fatalf("ReadIndex after Close: %v, want ErrClosed", err)
			}
		}
	}
}

// TestReadNoAllocs: a read under the lease, and handing a read to the
// driver, allocate nothing (the driver's side uses preallocated cells).
func TestReadNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are counted without -race")
	}
	c := newCluster(t, 1, 3, func(cfg *Config) { cfg.ReadLeaseNs = swarmLeaseNs })
	if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
		t.Fatal("no leader")
	}
	id, _ := c.leader()
	r := c.reps[id]
	c.w.RunFor(200_000)
	if a := testing.AllocsPerRun(100, func() {
		if _, ok := r.LeaseRead(); !ok {
			t.Fatal("no lease on an idle leader")
		}
	}); a != 0 {
		t.Fatalf("%.1f allocations per lease read", a)
	}
	got := 0
	c.onRead = func(_ rdma.NodeID, _ uint64, _ Index, err error) {
		if err == nil {
			got++
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		if err := r.SubmitRead(1); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%.1f allocations per SubmitRead", a)
	}
	c.w.RunFor(1_000_000)
	if got != 101 {
		t.Fatalf("%d of 101 reads answered", got)
	}
}
