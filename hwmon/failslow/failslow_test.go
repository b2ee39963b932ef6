package failslow

import (
	"testing"
	"time"
)

func newTestFailSlow(t *testing.T) (*Tracker, *clock) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.BaselineSamples = 100
	cfg.MinSamples = 20
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, newClock()
}

func feedPeer(f *Tracker, c *clock, peer, n int, latency time.Duration) {
	for i := 0; i < n; i++ {
		c.advance(10 * time.Millisecond)
		f.Observe(peer, int64(latency), c.now())
	}
}

func peerStatus(t *testing.T, f *Tracker, c *clock, peer int) PeerStatus {
	t.Helper()
	for _, p := range f.Status(c.now()) {
		if p.Peer == peer {
			return p
		}
	}
	t.Fatalf("peer %d unknown", peer)
	return PeerStatus{}
}

func TestFailSlowAgainstOwnBaseline(t *testing.T) {
	f, c := newTestFailSlow(t)
	// Peer 1 is near, peer 2 is always far: neither is slow against itself.
	for i := 0; i < 200; i++ {
		c.advance(10 * time.Millisecond)
		f.Observe(1, 10_000, c.now())
		f.Observe(2, 80_000, c.now())
	}
	for _, p := range f.Status(c.now()) {
		if p.Learning || p.Level != Info {
			t.Fatalf("steady peer flagged: %+v", p)
		}
	}
	if p := peerStatus(t, f, c, 2); p.BaselineP99Ns < 79_000 || p.BaselineP99Ns > 81_000 {
		t.Fatalf("baseline of far peer = %d", p.BaselineP99Ns)
	}

	// Peer 1 slows to 6x its own baseline: warn. Peer 2 unchanged.
	feedPeer(f, c, 1, 1000, 60*time.Microsecond)
	if p := peerStatus(t, f, c, 1); p.Level != Warn || p.SlowdownRatio < 5 || p.SlowdownRatio > 7 {
		t.Fatalf("6x: %+v", p)
	}
	feedPeer(f, c, 1, 1000, 120*time.Microsecond)
	if p := peerStatus(t, f, c, 1); p.Level != Critical {
		t.Fatalf("12x: %+v", p)
	}
	// Recovery: the slow samples age out of the 10 s window.
	feedPeer(f, c, 1, 1200, 10*time.Microsecond)
	if p := peerStatus(t, f, c, 1); p.Level != Info || p.SlowdownRatio > 1.2 {
		t.Fatalf("after recovery: %+v", p)
	}
}

func TestFailSlowNeedsEvidence(t *testing.T) {
	f, c := newTestFailSlow(t)
	feedPeer(f, c, 3, 50, 10*time.Microsecond)
	if p := peerStatus(t, f, c, 3); !p.Learning || p.Level != Info {
		t.Fatalf("learning peer judged: %+v", p)
	}
	feedPeer(f, c, 3, 60, 10*time.Microsecond)
	c.advance(30 * time.Second) // window empties
	feedPeer(f, c, 3, 5, 10*time.Millisecond)
	if p := peerStatus(t, f, c, 3); p.Samples != 5 || p.Level != Info {
		t.Fatalf("5 samples < MinSamples must not be judged: %+v", p)
	}
}

func TestFailSlowResetBaselineAndForget(t *testing.T) {
	f, c := newTestFailSlow(t)
	feedPeer(f, c, 1, 150, 10*time.Microsecond)
	feedPeer(f, c, 1, 500, 200*time.Microsecond)
	if p := peerStatus(t, f, c, 1); p.Level != Critical {
		t.Fatalf("20x: %+v", p)
	}
	f.ResetBaseline(1)
	feedPeer(f, c, 1, 1100, 200*time.Microsecond)
	if p := peerStatus(t, f, c, 1); p.Level != Info || p.Learning {
		t.Fatalf("after re-learning: %+v", p)
	}
	f.Forget(1)
	if len(f.Status(c.now())) != 0 {
		t.Fatal("forgotten peer still listed")
	}
}

func TestFailSlowObserveDoesNotAllocate(t *testing.T) {
	f, c := newTestFailSlow(t)
	f.Observe(1, 1000, c.now())
	now := c.now()
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		f.Observe(1, 12_345, now)
	})
	if allocs != 0 {
		t.Fatalf("Observe allocates %v per call", allocs)
	}
}

func TestFailSlowClampsOutOfRange(t *testing.T) {
	f, c := newTestFailSlow(t)
	f.Observe(1, -5, c.now())
	f.Observe(1, int64(time.Hour), c.now())
	if p := peerStatus(t, f, c, 1); p.Samples != 2 {
		t.Fatalf("out-of-range samples dropped: %+v", p)
	}
}

// Two significant figures judge as three do (1% precision against 5x and
// 10x ratios); out-of-range precision is refused by name.
func TestFailSlowSignificantFigures(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SignificantFigures = 6
	if err := cfg.Validate(); err == nil {
		t.Fatal("6 significant figures accepted")
	}
	cfg.SignificantFigures = 2
	cfg.BaselineSamples, cfg.MinSamples = 100, 20
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	feedPeer(f, c, 1, 200, 10*time.Microsecond)
	if p := peerStatus(t, f, c, 1); p.BaselineP99Ns < 9_900 || p.BaselineP99Ns > 10_100 || p.Level != Info {
		t.Fatalf("baseline at 2 figures: %+v", p)
	}
	feedPeer(f, c, 1, 1000, 120*time.Microsecond)
	if p := peerStatus(t, f, c, 1); p.Level != Critical || p.SlowdownRatio < 11.8 || p.SlowdownRatio > 12.2 {
		t.Fatalf("12x at 2 figures: %+v", p)
	}
}

type clock struct{ t time.Time }

func newClock() *clock                   { return &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }
func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
