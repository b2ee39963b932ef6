package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// seqSM records the payloads it applied, in order; safe to read from
// another goroutine.
type seqSM struct {
	mu  sync.Mutex
	ops []uint64
}

func (s *seqSM) Apply(_ Index, cmd []byte) {
	s.mu.Lock()
	s.ops = append(s.ops, binary.LittleEndian.Uint64(cmd))
	s.mu.Unlock()
}

func (s *seqSM) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]byte, 0, 8*len(s.ops))
	for _, op := range s.ops {
		out = binary.LittleEndian.AppendUint64(out, op)
	}
	return out, nil
}

func (s *seqSM) Restore(_ Index, snap []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = s.ops[:0]
	for p := snap; len(p) >= 8; p = p[8:] {
		s.ops = append(s.ops, binary.LittleEndian.Uint64(p))
	}
	return nil
}

func (s *seqSM) applied() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.ops...)
}

// liveCluster is three replicas over rdma/inproc, each driven by Run.
type liveCluster struct {
	net  *inproc.Network
	reps map[rdma.NodeID]*Replica
	sms  map[rdma.NodeID]*seqSM
	runs sync.WaitGroup
}

func newLiveCluster(t *testing.T, ctx context.Context) *liveCluster {
	t.Helper()
	return newLiveClusterSM(t, ctx, func() (StateMachine, *seqSM) { s := &seqSM{}; return s, s })
}

// newLiveClusterSM gives each replica the state machine newSM makes, and
// records what it applied through the *seqSM it returns beside it.
func newLiveClusterSM(t *testing.T, ctx context.Context, newSM func() (StateMachine, *seqSM)) *liveCluster {
	t.Helper()
	members := []rdma.NodeID{1, 2, 3}
	cfg := DefaultConfig()
	cfg.Members = members
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
	c := &liveCluster{net: net, reps: map[rdma.NodeID]*Replica{}, sms: map[rdma.NodeID]*seqSM{}}
	for _, id := range members {
		sm, rec := newSM()
		r, err := New(net.Node(id), sm, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.reps[id], c.sms[id] = r, rec
		c.runs.Add(1)
		go func() { defer c.runs.Done(); _ = r.Run(ctx, DriveSpinYield) }()
	}
	t.Cleanup(func() {
		for _, r := range c.reps {
			r.Close()
		}
		c.runs.Wait()
		net.Close()
	})
	return c
}

// leader waits for a replica other than not (if set) to lead.
func (c *liveCluster) leader(t *testing.T, not *Replica) *Replica {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, r := range c.reps {
			if r != not && r.IsLeader() {
				return r
			}
		}
	}
	t.Fatal("no leader within 20 s")
	return nil
}

func op(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// returnsWithin fails the test unless f returns within d.
func returnsWithin(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

func TestCloseTwiceAndRunAfterClose(t *testing.T) {
	c := newLiveCluster(t, context.Background())
	l := c.leader(t, nil)
	if _, err := l.Propose(context.Background(), op(1)); err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) {
		t.Fatal(err)
	}
	for _, r := range c.reps {
		returnsWithin(t, 5*time.Second, "Close", func() {
			if err := r.Close(); err != nil {
				t.Errorf("first Close: %v", err)
			}
			if err := r.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
	returnsWithin(t, 5*time.Second, "Run after Close", func() { c.runs.Wait() })
	for id, r := range c.reps {
		if err := r.Run(context.Background(), DriveSpinYield); !errors.Is(err, ErrClosed) {
			t.Errorf("node %d: Run after Close: %v, want ErrClosed", id, err)
		}
		if r.IsLeader() {
			t.Errorf("node %d leads after Close", id)
		}
		r.Step(r.f.Now()) // does nothing, does not crash
	}
	// Closing the fabric after Close is the documented order; the
	// replicas' Close returned, so nothing touches the regions.
	if err := c.net.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestProposeAndSubmitAfterClose(t *testing.T) {
	c := newLiveCluster(t, context.Background())
	l := c.leader(t, nil)
	l.Close()
	if _, err := l.Propose(context.Background(), op(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Propose after Close: %v, want ErrClosed", err)
	}
	if err := l.Submit(op(2), 2); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v, want ErrClosed", err)
	}
}

func TestRunTwiceRefused(t *testing.T) {
	c := newLiveCluster(t, context.Background())
	for id, r := range c.reps {
		// newLiveCluster's Run may not have started yet: wait until one
		// of the two is refused.
		returnsWithin(t, 5*time.Second, "second Run", func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := r.Run(ctx, DriveSpinYield); !errors.Is(err, ErrRunning) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("node %d: second Run: %v", id, err)
			}
		})
	}
}

// Close during a blocked Propose gives the proposer ErrClosed: the
// simulator steps nobody while Propose waits, so the proposal is queued.
func TestCloseDuringPropose(t *testing.T) {
	c := newCluster(t, 7, 3, nil)
	if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
		t.Fatal("no leader")
	}
	id, _ := c.leader()
	r := c.reps[id]
	var buf [kvCmdBytes]byte
	errc := make(chan error, 1)
	go func() {
		_, err := r.Propose(context.Background(), encodeKV(buf[:], true, 1, 1, 1))
		errc <- err
	}()
	for queued, deadline := 0, time.Now().Add(5*time.Second); queued == 0; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatal("the proposal was never queued")
		}
		r.ring.mu.Lock()
		queued = r.ring.qLen
		r.ring.mu.Unlock()
	}
	returnsWithin(t, 5*time.Second, "Close", func() { r.Close() })
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Propose across Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Propose did not return after Close")
	}
}

// The same with Run driving and proposals in flight: every proposer
// returns, with a result or an error, never hangs.
func TestCloseDuringProposeLive(t *testing.T) {
	c := newLiveCluster(t, context.Background())
	l := c.leader(t, nil)
	var wg sync.WaitGroup
	var closedSeen atomic.Int64
	stop := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); ; i++ {
				_, err := l.Propose(context.Background(), op(uint64(g)<<32|i))
				switch {
				case errors.Is(err, ErrClosed):
					closedSeen.Add(1)
					return
				case err == nil, errors.Is(err, ErrNotLeader), errors.Is(err, ErrLeadershipLost):
				default:
					t.Errorf("propose: %v", err)
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	returnsWithin(t, 5*time.Second, "Close", func() { l.Close() })
	returnsWithin(t, 5*time.Second, "proposers", func() { close(stop); wg.Wait() })
	if closedSeen.Load() == 0 {
		t.Log("no proposer saw ErrClosed (all between calls when Close ran)")
	}
}

// Stats is read from other goroutines while Run drives (meaningful under
// -race).
func TestStatsDuringRun(t *testing.T) {
	c := newLiveCluster(t, context.Background())
	l := c.leader(t, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range c.reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_ = r.Stats()
				select {
				case <-stop:
					return
				default:
					time.Sleep(10 * time.Microsecond)
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var acked uint64
	for i := uint64(1); acked < 20 && ctx.Err() == nil; i++ {
		if _, err := l.Propose(ctx, op(i)); err == nil {
			acked++
		} else {
			l = c.leader(t, nil)
		}
	}
	close(stop)
	wg.Wait()
	// Stats are published at the end of the Step that acknowledged, which
	// may not have ended yet.
	var commands, commit uint64
	for deadline := time.Now().Add(5 * time.Second); commands < acked && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, r := range c.reps {
			s := r.Stats()
			commands = max(commands, s.Commands)
			commit = max(commit, s.Commit)
		}
	}
	if commands < acked || commit == 0 {
		t.Fatalf("stats after %d acknowledged: commands %d commit %d", acked, commands, commit)
	}
}

// Cancelling Run and closing the fabric without waiting for the drivers
// used to unmap regions under a running Step (SIGSEGV in the detector).
// Now the fabric keeps its memory mapped while a driver can reach it.
func TestFabricClosedUnderLiveDrivers(t *testing.T) {
	for round := 0; round < 10; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		c := newLiveCluster(t, ctx)
		time.Sleep(5 * time.Millisecond)
		cancel()
		c.net.Close() // drivers may still be stepping
		c.runs.Wait()
	}
}

// Close the leader while proposals are in flight, let another replica
// take over, then close the rest while proposals race the closes. Every
// proposer returns, and every acknowledged command is in the log the
// survivors agree on.
func TestCloseRacingLeaderChange(t *testing.T) {
	c := newLiveCluster(t, context.Background())
	old := c.leader(t, nil)
	var (
		mu     sync.Mutex
		acked  = map[uint64]bool{}
		closed atomic.Bool
		next   atomic.Uint64
		wg     sync.WaitGroup
		byNew  atomic.Int64
	)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !closed.Load() {
				var at *Replica
				for _, r := range c.reps {
					if r.IsLeader() {
						at = r
					}
				}
				if at == nil {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				v := next.Add(1)
				_, err := at.Propose(context.Background(), op(v))
				switch {
				case err == nil:
					mu.Lock()
					acked[v] = true
					mu.Unlock()
					if at != old {
						byNew.Add(1)
					}
				case errors.Is(err, ErrClosed), errors.Is(err, ErrNotLeader), errors.Is(err, ErrLeadershipLost):
				default:
					t.Errorf("propose: %v", err)
					return
				}
			}
		}()
	}
	for deadline := time.Now().Add(20 * time.Second); next.Load() < 200; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			closed.Store(true)
			t.Fatalf("only %d proposals in 20 s", next.Load())
		}
	}
	returnsWithin(t, 5*time.Second, "closing the leader", func() { old.Close() })
	c.leader(t, old)
	for deadline := time.Now().Add(20 * time.Second); byNew.Load() < 100; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d commits after the leader change", byNew.Load())
		}
	}
	returnsWithin(t, 5*time.Second, "closing the survivors", func() {
		var cw sync.WaitGroup
		for _, r := range c.reps {
			cw.Add(1)
			go func() { defer cw.Done(); r.Close() }()
		}
		cw.Wait()
	})
	closed.Store(true)
	returnsWithin(t, 5*time.Second, "proposers", wg.Wait)

	// The survivors' applied sequences agree (one is a prefix of the
	// other) and the longer holds every acknowledged command once.
	var longest []uint64
	for id, sm := range c.sms {
		if c.reps[id] == old {
			continue
		}
		s := sm.applied()
		short, long := s, longest
		if len(s) > len(longest) {
			short, long = longest, s
		}
		for i := range short {
			if short[i] != long[i] {
				t.Fatalf("survivors diverge at command %d: %d vs %d", i, short[i], long[i])
			}
		}
		longest = long
	}
	seen := map[uint64]bool{}
	for _, v := range longest {
		if seen[v] {
			t.Fatalf("command %d applied twice", v)
		}
		seen[v] = true
	}
	for v := range acked {
		if !seen[v] {
			t.Fatalf("acknowledged command %d lost (%d acknowledged, %d applied)", v, len(acked), len(longest))
		}
	}
	t.Logf("%d acknowledged (%d by the new leader), %d applied", len(acked), byNew.Load(), len(longest))
}
