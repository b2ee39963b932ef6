package consensus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/hwmon"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// inprocCluster runs three replicas in real time over the in-process
// fabric, each driven by Run on its own goroutine.
func inprocCluster(t *testing.T) (map[rdma.NodeID]*Replica, func()) {
	t.Helper()
	return inprocClusterCfg(t, nil)
}

// inprocClusterCfg is inprocCluster with the config changed by mutate.
func inprocClusterCfg(t *testing.T, mutate func(*Config)) (map[rdma.NodeID]*Replica, func()) {
	t.Helper()
	members := []rdma.NodeID{1, 2, 3}
	cfg := DefaultConfig()
	cfg.Members = members
	if mutate != nil {
		mutate(&cfg)
	}
	net, err := inproc.NewNetwork(inproc.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range members {
		if _, err := net.AddNode(id, int(cfg.RegionBytes())); err != nil {
			t.Fatal(err)
		}
	}
	if err := net.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	reps := map[rdma.NodeID]*Replica{}
	for _, id := range members {
		r, err := New(net.Node(id), &nopSM{}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		reps[id] = r
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx, DriveSpinYield) }()
	}
	return reps, func() { cancel(); wg.Wait(); net.Close() }
}

func TestProposeBlockingAPI(t *testing.T) {
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
		t.Fatal("no leader within 10 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Concurrent proposals are batched and each gets its own outcome. On a
	// loaded host leadership may move under real time: a client follows
	// the NotLeaderError hint, as applications do.
	proposeAnywhere := func(cmd []byte) (Index, error) {
		at := leader
		for {
			idx, err := at.Propose(ctx, cmd)
			var nl *NotLeaderError
			if !errors.As(err, &nl) {
				return idx, err
			}
			if nl.Known && reps[nl.Leader] != nil {
				at = reps[nl.Leader]
			}
			if ctx.Err() != nil {
				return 0, err
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx, err := proposeAnywhere([]byte{byte(i)})
			if err == nil && idx == 0 {
				err = errors.New("committed at index 0")
			}
			if errors.Is(err, ErrLeadershipLost) {
				err = nil // outcome unknown after a leader change: allowed
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("propose: %v", err)
		}
	}

	// A follower names the leader (once it has learned it: a follower the
	// leader has not reached yet answers Known=false; under real-time
	// jitter leadership may also move, so the hint is checked against
	// whoever leads when it is given).
	for id, r := range reps {
		var err error
		named := false
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && !named; time.Sleep(time.Millisecond) {
			if r.IsLeader() {
				named = true // it leads now: nothing to check for it
				break
			}
			if _, err = r.Propose(ctx, []byte("x")); err == nil {
				named = true // became leader meanwhile and committed it
				break
			}
			var nl *NotLeaderError
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) {
				t.Fatalf("follower %d: %v, want a NotLeaderError", id, err)
			}
			named = errors.As(err, &nl) && nl.Known && reps[nl.Leader] != nil && reps[nl.Leader].IsLeader()
		}
		if !named {
			t.Fatalf("follower %d never named the current leader: %v", id, err)
		}
	}

	// Oversized proposals are refused with the limit in the message.
	big := make([]byte, leader.cfg.MaxProposalBytes()+1)
	if _, err := leader.Propose(ctx, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized proposal: %v, want ErrTooLarge", err)
	}

	// A cancelled context returns promptly: with its error, or with the
	// outcome if the driver was quicker (or NotLeader if leadership moved).
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	began := time.Now()
	for _, r := range reps {
		if _, err := r.Propose(cctx, []byte("late")); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("cancelled propose: %v", err)
		}
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("cancelled proposals took %v to return", d)
	}
}

// The hardware monitor runs on its own goroutine: a Failed verdict applied
// from there (while Run drives the replica) fences the leader, another
// replica takes over, and the latency accessors read concurrently.
// Meaningful under -race as well as without.
func TestApplyVerdictFromAnotherGoroutine(t *testing.T) {
	reps, stop := inprocCluster(t)
	defer stop()
	leaderNow := func(not *Replica) *Replica {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, r := range reps {
				if r != not && r.IsLeader() {
					return r
				}
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("no leader within 10 s")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Under real time leadership may move on a loaded host: follow it.
	for i := 0; i < 50; {
		if _, err := leaderNow(nil).Propose(ctx, []byte("x")); err == nil {
			i++
		} else if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) {
			t.Fatal(err)
		}
	}
	timed := int64(0)
	for _, r := range reps {
		for _, f := range r.FollowerLatency() {
			timed += f.Samples
		}
	}
	if timed == 0 {
		t.Fatal("no follower write timed after 50 commits")
	}
	old := leaderNow(nil)
	_ = old.ProbeSummary()
	hwmon.Failed.Apply(old)
	if _, err := old.Propose(ctx, []byte("x")); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced leader: %v", err)
	}
	nl := leaderNow(old)
	// Fence takes effect at old's next Step, which on a loaded host may
	// come after another replica already leads.
	for deadline := time.Now().Add(10 * time.Second); old.IsLeader() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if old.IsLeader() || !old.Fenced() {
		t.Fatalf("old leader leads=%v fenced=%v", old.IsLeader(), old.Fenced())
	}
	// The survivors keep committing (following leadership if it moves).
	for at := nl; ; at = leaderNow(old) {
		_, err := at.Propose(ctx, []byte("y"))
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("after the fence: %v", err)
		}
	}
}
