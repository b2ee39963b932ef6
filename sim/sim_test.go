package sim

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

func twoNodes(t *testing.T, cfg Config) (*World, *Node, *Node) {
	t.Helper()
	w := New(1, cfg)
	a, b := w.AddNode(1, 4096), w.AddNode(2, 4096)
	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll})
	return w, a, b
}

func pollOne(t *testing.T, w *World, n *Node, limitNs int64) rdma.Completion {
	t.Helper()
	var c [1]rdma.Completion
	if !w.RunUntil(func() bool { return n.Poll(c[:]) == 1 }, limitNs) {
		t.Fatalf("no completion at node %d by %d ns", n.id, limitNs)
	}
	return c[0]
}

func TestWriteLatencyAndVisibility(t *testing.T) {
	w, a, b := twoNodes(t, DefaultConfig())
	copy(a.Bytes()[0:8], "abcdefgh")
	c := a.Conn(2, rdma.PlaneReplication)
	if _, err := c.Post([]rdma.WorkRequest{{ID: 7, Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: 64, Length: 8}}); err != nil {
		t.Fatal(err)
	}
	var landedAt int64 = -1
	w.RunUntil(func() bool {
		if landedAt < 0 && string(b.Bytes()[64:72]) == "abcdefgh" {
			landedAt = w.Now()
		}
		return landedAt >= 0
	}, 1e9)
	cq := pollOne(t, w, a, 1e9)
	if cq.ID != 7 || cq.Status != rdma.StatusSuccess || cq.Peer != 2 || cq.Plane != rdma.PlaneReplication {
		t.Fatalf("completion %+v", cq)
	}
	if landedAt < 0 || landedAt >= w.Now() {
		t.Fatalf("data landed at %d, completion at %d: must land first", landedAt, w.Now())
	}
	if rt := w.Now(); rt < 13_000 || rt > 100_000 {
		t.Fatalf("write round trip %d ns, want about 15 µs", rt)
	}
}

func TestRevokeErrorsBothEndsUntilReset(t *testing.T) {
	w, a, b := twoNodes(t, DefaultConfig())
	ab, ba := a.Conn(2, rdma.PlaneReplication), b.Conn(1, rdma.PlaneReplication)
	if err := ba.SetRemoteAccess(rdma.AccessRemoteRead); err != nil {
		t.Fatal(err)
	}
	if b.BusyUntilNs() != w.cfg.SetAccessNs {
		t.Fatalf("SetRemoteAccess charged until %d, want %d", b.BusyUntilNs(), w.cfg.SetAccessNs)
	}
	ab.Post([]rdma.WorkRequest{{ID: 1, Op: rdma.OpWrite, Length: 8}, {ID: 2, Op: rdma.OpWrite, Length: 8}})
	c := pollOne(t, w, a, 1e9)
	if c.ID != 1 || c.Status != rdma.StatusRemoteInvalidRequest || !errors.Is(c.Status.Err(), rdma.ErrRemoteInvalidRequest) {
		t.Fatalf("first completion %+v", c)
	}
	if c := pollOne(t, w, a, 1e9); c.ID != 2 || c.Status != rdma.StatusFlushed {
		t.Fatalf("second completion %+v", c)
	}
	if ab.State() != rdma.ConnError || ba.State() != rdma.ConnError {
		t.Fatalf("states %v %v, want error both", ab.State(), ba.State())
	}
	ab.Post([]rdma.WorkRequest{{ID: 3, Op: rdma.OpRead, Length: 8}})
	if c := pollOne(t, w, a, w.Now()); c.ID != 3 || c.Status != rdma.StatusFlushed {
		t.Fatalf("post on error: %+v", c)
	}
	ab.Reset(rdma.AccessAll)
	ba.Reset(rdma.AccessAll)
	ab.Post([]rdma.WorkRequest{{ID: 4, Op: rdma.OpWrite, Length: 8}})
	if c := pollOne(t, w, a, w.Now()+1e9); c.ID != 4 || c.Status != rdma.StatusSuccess {
		t.Fatalf("after reset: %+v", c)
	}
}

func TestDeadPeerRetryExceededAfterTimeout(t *testing.T) {
	cfg := DefaultConfig().WithTransportTimeout(2_000_000)
	w, a, _ := twoNodes(t, cfg)
	w.Crash(2, false)
	start := w.Now()
	a.Conn(2, rdma.PlaneBackground).Post([]rdma.WorkRequest{{ID: 9, Op: rdma.OpRead, Length: 8}})
	c := pollOne(t, w, a, 1e9)
	if c.Status != rdma.StatusRetryExceeded {
		t.Fatalf("completion %+v", c)
	}
	if el := w.Now() - start; el < cfg.TransportTimeoutNs || el > cfg.TransportTimeoutNs+100_000 {
		t.Fatalf("retry exceeded after %d ns, timeout %d", el, cfg.TransportTimeoutNs)
	}
}

type countStepper struct {
	w     *World
	n     *Node
	steps []int64
	every int64
}

func (s *countStepper) Step(now int64) int64 {
	s.steps = append(s.steps, now)
	if s.every == 0 {
		return NoWake
	}
	return now + s.every
}

func TestStepperWakesOnTimerWriteAndCompletion(t *testing.T) {
	w, a, b := twoNodes(t, DefaultConfig())
	sb := &countStepper{w: w, n: b}
	w.SetStepper(2, sb)
	sa := &countStepper{w: w, n: a, every: 1000}
	w.SetStepper(1, sa)
	w.Run(10_500)
	if len(sa.steps) != 11 || len(sb.steps) != 1 {
		t.Fatalf("steps a=%d b=%d, want 11 and 1", len(sa.steps), len(sb.steps))
	}
	a.Conn(2, rdma.PlaneReplication).Post([]rdma.WorkRequest{{ID: 1, Op: rdma.OpCompareSwap, Length: 8, Compare: 0, Swap: 42}})
	w.Run(200_000)
	if len(sb.steps) != 2 {
		t.Fatalf("target stepped %d times, want one more for the landing", len(sb.steps))
	}
	if got := binary.LittleEndian.Uint64(b.Bytes()); got != 42 {
		t.Fatalf("swap left %d", got)
	}
	w.Pause(2)
	a.Conn(2, rdma.PlaneReplication).Post([]rdma.WorkRequest{{ID: 2, Op: rdma.OpWrite, RemoteOffset: 8, Length: 8}})
	w.Run(400_000)
	if len(sb.steps) != 2 {
		t.Fatalf("paused node stepped")
	}
	var c [4]rdma.Completion
	if n := a.Poll(c[:]); n != 2 || c[1].Status != rdma.StatusSuccess {
		t.Fatalf("write to paused node: %d %+v", n, c[:n])
	}
}

// The event hook runs after every event, packets of a long write included,
// so it sees a write half landed.
func TestEventHookRunsAfterEveryEvent(t *testing.T) {
	w, a, b := twoNodes(t, DefaultConfig())
	for i := range 3072 {
		a.Bytes()[i] = 0xff
	}
	calls, half := uint64(0), false
	w.SetEventHook(func() {
		calls++
		r := b.Bytes()
		half = half || (r[0] == 0xff && r[3071] == 0)
	})
	start := w.Events()
	a.Conn(2, rdma.PlaneReplication).Post([]rdma.WorkRequest{{ID: 1, Op: rdma.OpWrite, Length: 3072}})
	if c := pollOne(t, w, a, 1_000_000); c.Status != rdma.StatusSuccess {
		t.Fatalf("write: %+v", c)
	}
	if calls != w.Events()-start || calls < 3 {
		t.Fatalf("hook ran %d times for %d events", calls, w.Events()-start)
	}
	if !half {
		t.Fatal("hook never saw the write half landed")
	}
	w.SetEventHook(nil)
	before := calls
	w.Schedule(w.Now()+1, func() {})
	w.RunFor(10)
	if calls != before {
		t.Fatal("hook ran after it was removed")
	}
}

// TestLatencyFit prints the fitted medians and p99s next to the reference
// figures and keeps them within 10% of them.
func TestLatencyFit(t *testing.T) {
	w, a, _ := twoNodes(t, DefaultConfig())
	c := a.Conn(2, rdma.PlaneBackground)
	measure := func(op rdma.Op) (p50, p99 int64) {
		lat := make([]int64, 0, 2001)
		for i := range 2001 {
			start := w.Now()
			c.Post([]rdma.WorkRequest{{ID: uint64(i), Op: op, Length: 64}})
			pollOne(t, w, a, w.Now()+1e9)
			lat = append(lat, w.Now()-start)
		}
		slices.Sort(lat)
		return lat[len(lat)/2], lat[len(lat)*99/100]
	}
	for _, tc := range []struct {
		op     rdma.Op
		wantNs int64
	}{{rdma.OpWrite, 14_900}, {rdma.OpRead, 21_700}} {
		p50, p99 := measure(tc.op)
		t.Logf("%v: p50 %d ns, p99 %d ns (reference p50 %d ns)", tc.op, p50, p99, tc.wantNs)
		if d := p50 - tc.wantNs; d < -tc.wantNs/10 || d > tc.wantNs/10 {
			t.Errorf("%v median %d ns, want within 10%% of %d", tc.op, p50, tc.wantNs)
		}
		if p99 <= p50 {
			t.Errorf("%v has no tail: p99 %d, p50 %d", tc.op, p99, p50)
		}
	}
}
