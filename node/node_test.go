package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// kvSM records every command it applies and answers each with "ok" and
// the command, so a proposer can tell its result from another's.
type kvSM struct {
	mu      sync.Mutex
	applied [][]byte
}

func (s *kvSM) Apply(_ consensus.Index, cmd []byte) {
	s.mu.Lock()
	s.applied = append(s.applied, slices.Clone(cmd))
	s.mu.Unlock()
}

func (s *kvSM) ApplyResult(i consensus.Index, cmd, out []byte) []byte {
	s.Apply(i, cmd)
	return append(append(out, "ok:"...), cmd...)
}

func (s *kvSM) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for _, c := range s.applied {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b, nil
}

func (s *kvSM) Restore(_ consensus.Index, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = nil
	for len(b) >= 4 {
		n := binary.LittleEndian.Uint32(b)
		s.applied = append(s.applied, slices.Clone(b[4:4+n]))
		b = b[4+n:]
	}
	return nil
}

func (s *kvSM) has(cmd []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.applied, func(c []byte) bool { return string(c) == string(cmd) })
}

type cluster struct {
	net   *inproc.Network
	ids   []rdma.NodeID
	nodes map[rdma.NodeID]*Node
	sms   map[rdma.NodeID]*kvSM

	evMu   sync.Mutex
	events []Event
}

// relaxed is a config for a loaded test host (2 cores, the race
// detector): millisecond failure detection instead of tens of
// microseconds, so leadership holds while the tests run.
func relaxed() consensus.Config {
	cc := consensus.DefaultConfig()
	cc.PullScore.ReadIntervalNs = 5_000_000
	cc.PullScore.BeatIntervalNs = 1_000_000
	cc.PullScore.ResetIntervalNs = 20_000_000
	cc.ElectionTimeoutNs = 100_000_000
	return cc
}

// startCluster runs n nodes in this process over rdma/inproc.
func startCluster(t *testing.T, n int, mutate ...func(*Config)) *cluster {
	t.Helper()
	c := &cluster{nodes: map[rdma.NodeID]*Node{}, sms: map[rdma.NodeID]*kvSM{}}
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, rdma.NodeID(i))
	}
	cc := relaxed()
	net, fabrics, err := InprocFabrics(c.ids, cc)
	if err != nil {
		t.Fatal(err)
	}
	c.net = net
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.Close()
		}
		net.Close()
	})
	for _, id := range c.ids {
		cfg := DefaultConfig()
		cfg.ID = id
		cfg.Consensus = cc
		cfg.Consensus.Members = c.ids
		cfg.Fabric = fabrics[id]
		// Sleeping drivers leave a loaded host's cores to the proposers
		// (and the race detector).
		cfg.Poll = PollIdleSleep
		c.sms[id] = &kvSM{}
		cfg.StateMachine = c.sms[id]
		for _, m := range mutate {
			m(&cfg)
		}
		cfg.OnEvent = func(e Event) {
			c.evMu.Lock()
			c.events = append(c.events, e)
			c.evMu.Unlock()
		}
		nd, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[id] = nd
	}
	return c
}

// leader waits for a node that commits a proposal.
func (c *cluster) leader(t *testing.T, skip ...rdma.NodeID) *Node {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, id := range c.ids {
			nd := c.nodes[id]
			if slices.Contains(skip, id) || !nd.IsLeader() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := nd.Barrier(ctx)
			cancel()
			if err == nil {
				return nd
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no leader within 30s")
	return nil
}

func TestProposeReturnsTheStateMachinesResult(t *testing.T) {
	c := startCluster(t, 3)
	var l *Node
	out := make([]byte, 0, 64)
	for attempt := 0; ; attempt++ {
		l = c.leader(t)
		idx, res, err := l.Propose(context.Background(), []byte("order 1"), out)
		if errors.Is(err, consensus.ErrNotLeader) && attempt < 10 {
			continue // leadership moved on a loaded host: written nowhere, send again
		}
		if err != nil || string(res) != "ok:order 1" || idx == 0 {
			t.Fatalf("Propose: index %d result %q err %v", idx, res, err)
		}
		break
	}
	for _, id := range c.ids {
		if f := c.nodes[id]; f != l {
			_, _, err := f.Propose(context.Background(), []byte("x"), nil)
			if err == nil && f.Stats().LeaderTerms > 0 {
				continue // leadership moved to it on a loaded host: it rightly took the proposal
			}
			var nl *consensus.NotLeaderError
			if !errors.As(err, &nl) {
				t.Errorf("follower %d: %v, want a NotLeaderError", id, err)
			}
		}
	}
	// The leader change was reported with its steps, then its first commit.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.evMu.Lock()
		var lc *LeaderChange
		var fc *FirstCommit
		for _, e := range c.events {
			switch e := e.(type) {
			case *LeaderChange:
				if e.ID == l.ID() && e.Leader {
					lc = e
				}
			case *FirstCommit:
				if e.ID == l.ID() {
					fc = e
				}
			}
		}
		c.evMu.Unlock()
		if lc != nil && fc != nil {
			tm := fc.Term
			if tm.StartedAt.After(tm.GrantedAt) || tm.GrantedAt.After(tm.PreparedAt) || tm.PreparedAt.After(tm.LeadingAt) ||
				tm.LeadingAt.After(tm.FirstCommitAt) || tm.StartedAt.IsZero() {
				t.Errorf("term steps out of order: %+v", tm)
			}
			// It may have led again since, on a loaded host: the term is
			// in the history, not necessarily last.
			if terms := l.Terms(); !slices.Contains(terms, tm) {
				t.Errorf("Terms() = %+v, want it to hold %+v", terms, tm)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events: leader change %v, first commit %v", lc, fc)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCloseIsIdempotentAndConcurrent(t *testing.T) {
	c := startCluster(t, 3)
	nd := c.nodes[1]
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = nd.Close() }()
	}
	wg.Wait()
	if err := nd.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var none *Node
	if err := none.Close(); err != nil {
		t.Fatalf("Close of a nil node: %v", err)
	}
}

// Every method after Close answers without crashing; proposals fail with
// ErrClosed.
func TestEveryCallAfterClose(t *testing.T) {
	c := startCluster(t, 3)
	l := c.leader(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Propose(context.Background(), []byte("late"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Propose after Close: %v, want ErrClosed", err)
	}
	if err := l.Barrier(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Barrier after Close: %v, want ErrClosed", err)
	}
	if st := l.Status(); !st.Closed || st.IsLeader {
		t.Errorf("Status after Close: %+v", st)
	}
	if err := l.Reconnect(2); !errors.Is(err, ErrNoBootstrap) {
		t.Errorf("Reconnect: %v", err)
	}
	l.Fence()
	l.SetDegraded(true)
	_ = l.Terms()
	_ = l.FollowerLatency()
	_ = l.ProbeSummary()
	_, _ = l.Leader()
	var none *Node
	if _, _, err := none.Propose(context.Background(), nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Propose on a nil node: %v", err)
	}
}

// Proposers blocked in Propose when the leader is closed all return, with
// an error; a nil error always carries the command's result.
func TestCloseDuringPropose(t *testing.T) {
	c := startCluster(t, 3)
	l := c.leader(t)
	var wg sync.WaitGroup
	var acked, failed atomic.Int64
	started := make(chan struct{})
	var once sync.Once
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]byte, 0, 64)
			for i := 0; ; i++ {
				cmd := fmt.Appendf(nil, "g%d-%d", g, i)
				_, res, err := l.Propose(context.Background(), cmd, out)
				if err != nil {
					if res != nil {
						t.Errorf("error %v came with a result", err)
					}
					if failed.Add(1) == 1 {
						t.Logf("first error, after %d acknowledged: %v", acked.Load(), err)
					}
					once.Do(func() { close(started) })
					return
				}
				if string(res) != "ok:"+string(cmd) {
					t.Errorf("%s: result %q", cmd, res)
				}
				if acked.Add(1) == 50 {
					once.Do(func() { close(started) })
				}
			}
		}()
	}
	<-started
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("proposers still blocked 10s after Close")
	}
	if failed.Load() != 8 {
		t.Fatalf("%d of 8 proposers saw an error", failed.Load())
	}
}

// Status, Terms and the accessors from many goroutines while the driver
// runs and proposals flow: the race detector checks them.
func TestStatusFromManyGoroutines(t *testing.T) {
	c := startCluster(t, 3)
	l := c.leader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				for _, id := range c.ids {
					nd := c.nodes[id]
					st := nd.Status()
					if st.ID != id || len(st.Peers) != 2 {
						t.Errorf("status of %d: %+v", id, st)
						return
					}
					_ = nd.Terms()
					_, _ = nd.Leader()
					_ = nd.Fenced()
				}
				time.Sleep(100 * time.Microsecond) // leave the drivers some CPU
			}
		}()
	}
	for i := 0; ctx.Err() == nil; i++ {
		_, _, _ = l.Propose(ctx, fmt.Appendf(nil, "s%d", i), nil)
	}
	wg.Wait()
	// Leadership may move on a loaded host; the status stays coherent.
	if st := l.Status(); st.Commit == 0 || st.Applied > st.Commit || st.Health == "starting" {
		t.Errorf("status: %+v", st)
	}
}

// The leader is killed and closed while proposals flow, and a follower is
// closed while the survivors elect a new leader: every acknowledged
// command is applied on the survivors.
func TestCloseRacingLeaderChangeLosesNothingAcknowledged(t *testing.T) {
	c := startCluster(t, 5)
	l := c.leader(t)
	var follower rdma.NodeID
	for _, id := range c.ids {
		if id != l.ID() {
			follower = id
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var acked [][]byte
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 60; {
				cmd := fmt.Appendf(nil, "g%d-%d", g, i)
				ok := false
				for _, id := range c.ids {
					nd := c.nodes[id]
					if !nd.IsLeader() {
						continue
					}
					pctx, pcancel := context.WithTimeout(ctx, time.Second)
					_, _, err := nd.Propose(pctx, cmd, nil)
					pcancel()
					if ok = err == nil; ok {
						mu.Lock()
						acked = append(acked, cmd)
						mu.Unlock()
						i++
					}
					break
				}
				if !ok {
					time.Sleep(200 * time.Microsecond) // no leader yet: leave the CPU to the election
				}
			}
		}()
	}
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= 60 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.net.Kill(l.ID()); err != nil {
		t.Fatal(err)
	}
	var closers sync.WaitGroup
	closers.Add(2)
	go func() { defer closers.Done(); _ = l.Close() }()
	go func() { defer closers.Done(); _ = c.nodes[follower].Close() }()
	closers.Wait()
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("proposals did not finish on the new leader within 2 minutes")
	}
	nl := c.leader(t, l.ID(), follower)
	if err := nl.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids {
		if id == l.ID() || id == follower {
			continue
		}
		// A survivor applies everything committed once it catches up.
		deadline := time.Now().Add(10 * time.Second)
		for _, cmd := range acked {
			for !c.sms[id].has(cmd) {
				if time.Now().After(deadline) {
					t.Fatalf("node %d never applied acknowledged %s", id, cmd)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	t.Logf("%d acknowledged commands applied on every survivor", len(acked))
}

// Busy-polling drivers that would take the last Go processor are refused
// at start, and the refusal names the field and the remedy.
func TestSpinRefusedWithoutSpareProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	cc := consensus.DefaultConfig()
	ids := []rdma.NodeID{1, 2, 3}
	net, fabrics, err := InprocFabrics(ids, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	cfg := DefaultConfig()
	cfg.ID, cfg.Fabric, cfg.StateMachine, cfg.Poll = 1, fabrics[1], &kvSM{}, PollSpin
	cfg.Consensus.Members = ids
	_, err = Start(context.Background(), cfg)
	if !errors.Is(err, consensus.ErrTooFewProcs) || !errors.Is(err, ErrConfig) {
		t.Fatalf("spin on GOMAXPROCS 1: %v, want ErrTooFewProcs", err)
	}
	if spinNodes.Load() != 0 {
		t.Fatalf("a refused node still counts as spinning (%d)", spinNodes.Load())
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	base := DefaultConfig()
	base.ID, base.ClusterID, base.StateMachine, base.Insecure = 1, 7, &kvSM{}, true
	base.Device.Interface = "lo"
	base.Peers = []Peer{{1, "127.0.0.1:1"}, {2, "127.0.0.1:2"}, {3, "127.0.0.1:3"}}
	for _, tc := range []struct {
		field string
		mod   func(*Config)
	}{
		{"ID", func(c *Config) { c.ID = 0 }},
		{"StateMachine", func(c *Config) { c.StateMachine = nil }},
		{"Peers[1].Address", func(c *Config) { c.Peers[1].Address = "" }},
		{"Peers[2].ID", func(c *Config) { c.Peers[2].ID = 2 }},
		{"Peers", func(c *Config) { c.ID = 9 }},
		{"ClusterID", func(c *Config) { c.ClusterID = 0 }},
		{"Credentials", func(c *Config) { c.Insecure = false }},
		{"Device", func(c *Config) { c.Device.Interface = "" }},
		{"Poll", func(c *Config) { c.Poll = 9 }},
		{"Consensus: consensus: invalid config: LogSlots", func(c *Config) { c.Consensus.LogSlots = 1 }},
	} {
		cfg := base
		cfg.Peers = slices.Clone(base.Peers)
		tc.mod(&cfg)
		_, err := Start(context.Background(), cfg)
		if !errors.Is(err, ErrConfig) || !containsField(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
}

func containsField(msg, field string) bool {
	return strings.Contains(msg, field+":") || strings.Contains(msg, field+" ")
}
