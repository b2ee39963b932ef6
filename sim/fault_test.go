package sim

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

const testTimeoutNs = 1_000_000

func threeNodes(t *testing.T, cfg Config) *World {
	t.Helper()
	w := New(7, cfg)
	for id := rdma.NodeID(1); id <= 3; id++ {
		w.AddNode(id, 4096)
	}
	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll})
	return w
}

// roundTrip posts one request and returns its completion and how long it took.
func roundTrip(t *testing.T, w *World, from, to rdma.NodeID, p rdma.Plane, wr rdma.WorkRequest) (rdma.Completion, int64) {
	t.Helper()
	n := w.Node(from)
	start := w.Now()
	if _, err := n.Conn(to, p).Post([]rdma.WorkRequest{wr}); err != nil {
		t.Fatal(err)
	}
	c := pollOne(t, w, n, start+10*w.cfg.TransportTimeoutNs+1e9)
	return c, w.Now() - start
}

func TestAsymmetricCut(t *testing.T) {
	w := threeNodes(t, DefaultConfig().WithTransportTimeout(testTimeoutNs))
	w.Cut(1, 2) // 1 -> 2 is dead, 2 -> 1 works
	binary.LittleEndian.PutUint64(w.Node(1).Bytes(), 11)
	binary.LittleEndian.PutUint64(w.Node(2).Bytes(), 22)

	c, el := roundTrip(t, w, 1, 2, rdma.PlaneReplication, rdma.WorkRequest{ID: 1, Op: rdma.OpWrite, RemoteOffset: 64, Length: 8})
	if c.Status != rdma.StatusRetryExceeded || el < testTimeoutNs {
		t.Fatalf("write over the cut direction: %v after %d ns", c.Status, el)
	}
	if binary.LittleEndian.Uint64(w.Node(2).Bytes()[64:]) != 0 {
		t.Fatal("a write over a cut link landed")
	}
	// 2's write reaches 1 but its acknowledgement cannot come back: the
	// data is there and the writer still sees retry exceeded.
	c, el = roundTrip(t, w, 2, 1, rdma.PlaneBackground, rdma.WorkRequest{ID: 2, Op: rdma.OpWrite, RemoteOffset: 64, Length: 8})
	if c.Status != rdma.StatusRetryExceeded || el < testTimeoutNs {
		t.Fatalf("write whose ack is cut: %v after %d ns", c.Status, el)
	}
	if got := binary.LittleEndian.Uint64(w.Node(1).Bytes()[64:]); got != 22 {
		t.Fatalf("write whose ack was cut did not land: %d", got)
	}
	if s := w.Node(2).Conn(1, rdma.PlaneBackground).State(); s != rdma.ConnError {
		t.Fatalf("end after retry exceeded is %v", s)
	}
	w.Heal(1, 2)
	// 2's end is still in ERROR, so 1's read goes unanswered until 2 resets.
	c, _ = roundTrip(t, w, 1, 2, rdma.PlaneBackground, rdma.WorkRequest{ID: 3, Op: rdma.OpRead, LocalOffset: 8, Length: 8})
	if c.Status != rdma.StatusRetryExceeded {
		t.Fatalf("read into an errored end: %v", c.Status)
	}
	w.Node(1).Conn(2, rdma.PlaneBackground).Reset(rdma.AccessAll)
	w.Node(2).Conn(1, rdma.PlaneBackground).Reset(rdma.AccessAll)
	c, _ = roundTrip(t, w, 1, 2, rdma.PlaneBackground, rdma.WorkRequest{ID: 3, Op: rdma.OpRead, LocalOffset: 8, Length: 8})
	if c.Status != rdma.StatusSuccess {
		t.Fatalf("after heal: %v", c.Status)
	}
}

func TestPartialConnectivity(t *testing.T) {
	w := threeNodes(t, DefaultConfig().WithTransportTimeout(testTimeoutNs))
	w.CutBoth(1, 2)
	if w.Connected(1, 2) || !w.Connected(1, 3) || !w.Connected(2, 3) {
		t.Fatal("Connected disagrees with the cut")
	}
	for _, tc := range []struct {
		from, to rdma.NodeID
		want     rdma.Status
	}{{1, 3, rdma.StatusSuccess}, {2, 3, rdma.StatusSuccess}, {3, 1, rdma.StatusSuccess}, {1, 2, rdma.StatusRetryExceeded}, {2, 1, rdma.StatusRetryExceeded}} {
		c, _ := roundTrip(t, w, tc.from, tc.to, rdma.PlaneBackground, rdma.WorkRequest{Op: rdma.OpRead, Length: 8})
		if c.Status != tc.want {
			t.Fatalf("%d -> %d: %v, want %v", tc.from, tc.to, c.Status, tc.want)
		}
	}
}

func TestPartitionGroups(t *testing.T) {
	w := threeNodes(t, DefaultConfig().WithTransportTimeout(testTimeoutNs))
	w.Partition([]rdma.NodeID{1}, []rdma.NodeID{2, 3})
	if w.Connected(1, 2) || w.Connected(1, 3) || !w.Connected(2, 3) {
		t.Fatal("partition {1} | {2,3} not in effect")
	}
	w.HealNetwork()
	if !w.Connected(1, 2) || !w.Connected(1, 3) {
		t.Fatal("HealNetwork left a cut")
	}
}

// TestLossDelaysButKeepsOrder: on a lossy link every write still lands, in
// order, only later.
func TestLossDelaysButKeepsOrder(t *testing.T) {
	cfg := DefaultConfig().WithTransportTimeout(50_000_000)
	cfg.RetransmitIntervalNs = 50_000 // fast retransmission keeps the test short
	w := threeNodes(t, cfg)
	w.SetLoss(1, 2, 0.3)
	w.SetLoss(2, 1, 0.3)
	a, b := w.Node(1), w.Node(2)
	const writes = 200
	for i := 1; i <= writes; i++ {
		binary.LittleEndian.PutUint64(a.Bytes()[8*i:], uint64(i))
	}
	c := a.Conn(2, rdma.PlaneReplication)
	for i := 1; i <= writes; i++ {
		if _, err := c.Post([]rdma.WorkRequest{{ID: uint64(i), Op: rdma.OpWrite, LocalOffset: uint64(8 * i), RemoteOffset: 0, Length: 8}}); err != nil {
			t.Fatal(err)
		}
	}
	var last uint64
	var got []rdma.Completion
	var buf [16]rdma.Completion
	ok := w.RunUntil(func() bool {
		v := binary.LittleEndian.Uint64(b.Bytes())
		if v < last {
			t.Fatalf("target went back from %d to %d", last, v)
		}
		last = v
		k := a.Poll(buf[:])
		got = append(got, buf[:k]...)
		return len(got) == writes
	}, 1e10)
	if !ok {
		t.Fatalf("%d of %d completions", len(got), writes)
	}
	for i, cq := range got {
		if cq.Status != rdma.StatusSuccess || cq.ID != uint64(i+1) {
			t.Fatalf("completion %d: %+v", i, cq)
		}
	}
	if last != writes {
		t.Fatalf("final value %d", last)
	}
	// Without loss the same 200 pipelined writes take well under 100 µs.
	if w.Now() < 200_000 {
		t.Fatalf("lossy run took only %d ns: loss added no delay", w.Now())
	}
}

func TestLinkDelayAndSlowNode(t *testing.T) {
	w := threeNodes(t, DefaultConfig())
	wr := rdma.WorkRequest{Op: rdma.OpWrite, Length: 8}
	_, base := roundTrip(t, w, 1, 2, rdma.PlaneReplication, wr)
	w.SetLinkDelay(1, 2, 100_000, 0)
	if _, el := roundTrip(t, w, 1, 2, rdma.PlaneReplication, wr); el < 100_000+13_000 || el > 100_000+60_000 {
		t.Fatalf("round trip with 100 µs one-way delay: %d ns (base %d)", el, base)
	}
	if _, el := roundTrip(t, w, 1, 3, rdma.PlaneReplication, wr); el > 60_000 {
		t.Fatalf("delay leaked to another link: %d ns", el)
	}
	w.HealNetwork()
	w.SetSlow(3, 10)
	if _, el := roundTrip(t, w, 1, 3, rdma.PlaneReplication, wr); el < 130_000 {
		t.Fatalf("round trip to a 10x slow node: %d ns", el)
	}
	if _, el := roundTrip(t, w, 1, 2, rdma.PlaneReplication, wr); el > 60_000 {
		t.Fatalf("slowness leaked to another node: %d ns", el)
	}
}

func TestCrashRestartSemantics(t *testing.T) {
	for _, keep := range []bool{false, true} {
		w := threeNodes(t, DefaultConfig().WithTransportTimeout(testTimeoutNs))
		copy(w.Node(2).Bytes(), "persist?")
		restarted := 0
		w.SetRestartHook(func(id rdma.NodeID) { restarted++ })
		w.Crash(2, keep)
		// A request to the crashed node fails only after the timeout.
		c, el := roundTrip(t, w, 1, 2, rdma.PlaneBackground, rdma.WorkRequest{Op: rdma.OpRead, Length: 8})
		if c.Status != rdma.StatusRetryExceeded || el < testTimeoutNs {
			t.Fatalf("read from crashed node: %v after %d", c.Status, el)
		}
		w.Restart(2)
		if restarted != 1 {
			t.Fatal("restart hook not called")
		}
		if got := string(w.Node(2).Bytes()[:8]); (got == "persist?") != keep {
			t.Fatalf("keepMemory=%v: region holds %q after restart", keep, got)
		}
		n2 := w.Node(2)
		for _, peer := range []rdma.NodeID{1, 3} {
			for p := rdma.Plane(0); p < rdma.NumPlanes; p++ {
				if s := n2.Conn(peer, p).State(); s != rdma.ConnError {
					t.Fatalf("restarted node's end to %d is %v", peer, s)
				}
				if a := n2.Conn(peer, p).RemoteAccess(); a != rdma.AccessNone {
					t.Fatalf("restarted node's end grants %v", a)
				}
				if s := w.Node(peer).Conn(2, p).State(); s != rdma.ConnError {
					t.Fatalf("peer %d's end to the restarted node is %v", peer, s)
				}
			}
		}
		c, _ = roundTrip(t, w, 3, 2, rdma.PlaneBackground, rdma.WorkRequest{Op: rdma.OpRead, Length: 8})
		if c.Status != rdma.StatusFlushed {
			t.Fatalf("post before reset: %v", c.Status)
		}
		n2.Conn(3, rdma.PlaneBackground).Reset(rdma.AccessAll)
		w.Node(3).Conn(2, rdma.PlaneBackground).Reset(rdma.AccessAll)
		c, _ = roundTrip(t, w, 3, 2, rdma.PlaneBackground, rdma.WorkRequest{Op: rdma.OpRead, Length: 8})
		if c.Status != rdma.StatusSuccess {
			t.Fatalf("after resetting both ends: %v", c.Status)
		}
	}
}

func TestCrashedInitiatorsRequestsVanish(t *testing.T) {
	w := threeNodes(t, DefaultConfig())
	w.Node(1).Conn(2, rdma.PlaneReplication).Post([]rdma.WorkRequest{{ID: 1, Op: rdma.OpWrite, Length: 8}})
	w.Crash(1, true)
	w.RunFor(10 * testTimeoutNs)
	var buf [4]rdma.Completion
	if n := w.Node(1).Poll(buf[:]); n != 0 {
		t.Fatalf("crashed node got completions %+v", buf[:n])
	}
	if _, err := w.Node(1).Conn(2, rdma.PlaneReplication).Post([]rdma.WorkRequest{{Op: rdma.OpWrite, Length: 8}}); !errors.Is(err, rdma.ErrClosed) {
		t.Fatalf("post from a crashed node: %v", err)
	}
}

func TestFlipBit(t *testing.T) {
	w := threeNodes(t, DefaultConfig())
	w.FlipBit(1, 100, 3)
	if w.Node(1).Bytes()[100] != 8 {
		t.Fatalf("byte is %d after flipping bit 3", w.Node(1).Bytes()[100])
	}
}

func TestPostErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueDepth = 4
	w := threeNodes(t, cfg)
	c := w.Node(1).Conn(2, rdma.PlaneReplication)
	if _, err := c.Post([]rdma.WorkRequest{{Op: rdma.OpWrite, LocalOffset: 4090, Length: 8}}); !errors.Is(err, rdma.ErrOutOfBounds) {
		t.Fatalf("local out of bounds: %v", err)
	}
	if _, err := c.Post([]rdma.WorkRequest{{Op: rdma.OpCompareSwap, LocalOffset: 4, Length: 8}}); !errors.Is(err, rdma.ErrLocal) {
		t.Fatalf("misaligned swap: %v", err)
	}
	wrs := make([]rdma.WorkRequest, 6)
	for i := range wrs {
		wrs[i] = rdma.WorkRequest{ID: uint64(i), Op: rdma.OpWrite, Length: 8}
	}
	if n, err := c.Post(wrs); n != 4 || !errors.Is(err, rdma.ErrQueueFull) {
		t.Fatalf("overfull post: %d %v", n, err)
	}
	// Remote bounds are the target's business: remote access error, and
	// both ends break.
	w.RunFor(1e6)
	w.Node(1).Poll(make([]rdma.Completion, 8))
	cq, _ := roundTrip(t, w, 1, 2, rdma.PlaneBackground, rdma.WorkRequest{Op: rdma.OpRead, RemoteOffset: 4092, Length: 8})
	if cq.Status != rdma.StatusRemoteAccessError || w.Node(2).Conn(1, rdma.PlaneBackground).State() != rdma.ConnError {
		t.Fatalf("remote out of bounds: %+v", cq)
	}
	if rdma.Conn(c).Peer() != 2 || w.Node(1).Conn(9, rdma.PlaneReplication) != nil {
		t.Fatal("Conn lookup")
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	for field, mutate := range map[string]func(*Config){
		"WriteAck.JitterNs":    func(c *Config) { c.WriteAck.JitterNs = -1 },
		"ReadRequest.TailProb": func(c *Config) { c.ReadRequest.TailProb = 2 },
		"TransportTimeoutNs":   func(c *Config) { c.TransportTimeoutNs = 0 },
		"RetransmitIntervalNs": func(c *Config) { c.RetransmitIntervalNs = c.TransportTimeoutNs + 1 },
		"QueueDepth":           func(c *Config) { c.QueueDepth = 0 },
		"BandwidthBytesPerSec": func(c *Config) { c.BandwidthBytesPerSec = 0 },
		"ResetNs":              func(c *Config) { c.ResetNs = -5 },
	} {
		cfg := DefaultConfig()
		mutate(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRandStreamsIndependent(t *testing.T) {
	w1, w2 := New(5, DefaultConfig()), New(5, DefaultConfig())
	w1.Rand(3).Uint64() // drawing from one stream must not shift another
	if w1.Rand(4).Uint64() != w2.Rand(4).Uint64() {
		t.Fatal("stream 4 depends on stream 3's use")
	}
	if w1.Rand(4).Uint64() == w1.Rand(5).Uint64() {
		t.Fatal("streams 4 and 5 collide")
	}
	if New(6, DefaultConfig()).Rand(4).Uint64() == w2.Rand(4).Uint64() {
		t.Fatal("seed does not change the stream")
	}
}

func TestScheduleOrder(t *testing.T) {
	w := New(1, DefaultConfig())
	var got []int
	w.Schedule(100, func() { got = append(got, 1) })
	w.Schedule(50, func() { got = append(got, 0) })
	w.Schedule(100, func() { got = append(got, 2) })
	w.Schedule(100, func() {
		w.Schedule(100, func() { got = append(got, 4) }) // same time, runs after
		got = append(got, 3)
	})
	w.Run(99)
	if len(got) != 1 || w.Now() != 99 {
		t.Fatalf("Run(99) ran %v, clock %d", got, w.Now())
	}
	w.Run(100)
	if want := []int{0, 1, 2, 3, 4}; len(got) != 5 || got[4] != 4 || got[3] != 3 || got[1] != 1 {
		t.Fatalf("order %v, want %v", got, want)
	}
	if w.RunUntil(func() bool { return false }, 500) || w.Now() != 500 {
		t.Fatalf("RunUntil with nothing to do: clock %d", w.Now())
	}
}

type chargeStepper struct {
	n     *Node
	steps []int64
}

func (s *chargeStepper) Step(now int64) int64 {
	s.steps = append(s.steps, now)
	if len(s.steps) == 1 {
		s.n.Conn(2, rdma.PlaneReplication).Reset(rdma.AccessAll)
		if s.n.Now() != now+s.n.w.cfg.ResetNs {
			panic("reset did not advance the node's clock")
		}
		return now + 1000
	}
	return NoWake
}

func TestResetChargesCPU(t *testing.T) {
	w := threeNodes(t, DefaultConfig())
	s := &chargeStepper{n: w.Node(1)}
	w.SetStepper(1, s)
	w.Run(10e6)
	if len(s.steps) != 2 || s.steps[1] < w.cfg.ResetNs {
		t.Fatalf("steps at %v: the second must wait out the reset's %d ns", s.steps, w.cfg.ResetNs)
	}
	st := w.Node(1).Stats()
	if st.Resets != 1 || st.CPUChargedNs != w.cfg.ResetNs {
		t.Fatalf("stats %+v", st)
	}
}

// TestNoAllocsPerOp: a steady stream of posts and completions allocates
// nothing once the queues have grown.
func TestNoAllocsPerOp(t *testing.T) {
	w := threeNodes(t, DefaultConfig())
	a := w.Node(1)
	c := a.Conn(2, rdma.PlaneReplication)
	wrs := []rdma.WorkRequest{{Op: rdma.OpWrite, Length: 64}, {Op: rdma.OpRead, LocalOffset: 64, Length: 64}, {Op: rdma.OpCompareSwap, LocalOffset: 128, RemoteOffset: 128, Length: 8}}
	var buf [8]rdma.Completion
	got := 0
	done := func() bool { got += a.Poll(buf[:]); return got >= 3 }
	round := func() {
		got = 0
		if _, err := c.Post(wrs); err != nil {
			t.Fatal(err)
		}
		w.RunUntil(done, w.Now()+1e9)
	}
	for range 100 {
		round()
	}
	if allocs := testing.AllocsPerRun(200, round); allocs != 0 {
		t.Fatalf("%v allocations per round of 3 requests", allocs)
	}
}

// tornWatcher steps whenever bytes land and records what it saw.
type tornWatcher struct {
	n          *Node
	partial    int // steps that saw the head written but not the tail
	order      bool
	doneAtStep int
	steps      int
}

func (s *tornWatcher) Step(int64) int64 {
	s.steps++
	b := s.n.Bytes()
	head, tail := b[0] == 0xEE, b[4095] == 0xEE
	if head && !tail {
		s.partial++
	}
	if tail && !head {
		s.order = false // a later packet landed before an earlier one
	}
	if tail && s.doneAtStep == 0 {
		s.doneAtStep = s.steps
	}
	return NoWake
}

// TestLargeWriteLandsPacketByPacket: a write longer than the MTU becomes
// visible packet by packet, in address order, so a canary must be checked.
func TestLargeWriteLandsPacketByPacket(t *testing.T) {
	w := New(3, DefaultConfig())
	a, b := w.AddNode(1, 8192), w.AddNode(2, 8192)
	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll})
	for i := range 4096 {
		a.Bytes()[i] = 0xEE
	}
	s := &tornWatcher{n: b, order: true}
	w.SetStepper(2, s)
	w.Run(1)
	c, el := roundTrip(t, w, 1, 2, rdma.PlaneReplication, rdma.WorkRequest{Op: rdma.OpWrite, Length: 4096})
	if c.Status != rdma.StatusSuccess {
		t.Fatal(c.Status)
	}
	if !s.order || s.partial == 0 || s.doneAtStep == 0 {
		t.Fatalf("in order %v, steps with a partial write %d, complete at step %d", s.order, s.partial, s.doneAtStep)
	}
	// 4 KiB at 200 MiB/s takes about 20 µs on the wire.
	if el < 13_000+19_000 {
		t.Fatalf("4 KiB write round trip %d ns: serialisation missing", el)
	}
}
