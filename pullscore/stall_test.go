package pullscore_test

import (
	"testing"

	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/sim"
)

// TestDescheduledReaderSuspectsNobody: a node that was not running for
// 100 bounds (paused: its NIC kept serving) finds every peer as fresh as it
// left them when it runs again; its own absence is not their silence.
// Without pushes, so that only its reads (not yet polled when it wakes)
// can show it the peers' beats. (Its own gap also raises its bound, the
// second line of defence.)
func TestDescheduledReaderSuspectsNobody(t *testing.T) {
	cfg := pullscore.DefaultConfig()
	cfg.PushBeats = false
	c := newClusterWith(t, 3, testSeed(t, 41), sim.DefaultConfig(), cfg)
	c.m[3].stepFirst = true
	c.settle(t)
	d := c.m[3].det
	before := d.Stats()
	c.w.Pause(3)
	c.w.RunFor(100 * d.FailBoundNs())
	c.w.Resume(3)
	c.w.RunFor(20 * d.PeriodNs())
	st := d.Stats()
	if st.ReaderStalls == before.ReaderStalls {
		t.Fatalf("the pause was not seen as a stall of node 3: %+v", st)
	}
	if st.Suspicions != before.Suspicions || !d.Alive(1) || !d.Alive(2) {
		t.Fatalf("node 3 suspected a peer after its own pause: suspicions %d -> %d, alive 1 %v, 2 %v",
			before.Suspicions, st.Suspicions, d.Alive(1), d.Alive(2))
	}
}

// TestBoundLearnsAPeersStalls: a peer that stops for 2 ms every 20 ms (a
// host that deschedules it) may be suspected the first time; the bound
// then covers its stalls, and later ones pass without a suspicion.
func TestBoundLearnsAPeersStalls(t *testing.T) {
	c := newCluster(t, 3, testSeed(t, 43), sim.DefaultConfig())
	c.settle(t)
	d := c.m[1].det
	const stallNs = 2_000_000
	var learnt uint64
	for i := range 10 {
		c.w.RunFor(20_000_000)
		if i == 3 {
			learnt = d.Stats().Suspicions
			if b := d.FailBoundNs(); b < stallNs {
				t.Fatalf("bound %d ns after three stalls of %d ns", b, stallNs)
			}
		}
		c.w.Pause(2)
		c.w.RunFor(stallNs)
		c.w.Resume(2)
	}
	c.w.RunFor(1_000_000)
	if got := d.Stats().Suspicions; got != learnt {
		t.Fatalf("%d suspicions after the bound learnt the stalls (bound %d ns)", got-learnt, d.FailBoundNs())
	}
	if !d.Alive(2) {
		t.Fatal("node 2 not alive at the end")
	}
}
