package consensus

import (
	"slices"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// Leader crash to the first commit by the new leader, on the rxe-fitted
// simulated fabric, over 20 seeds: every failover must finish within 3 ms
// (detection by pull-score ~0.6 ms, permission switch ~0.1-0.3 ms, prepare
// and recovery reads a few round trips). The distribution is logged.
func TestFailoverFirstCommitUnder3ms20Seeds(t *testing.T) {
	const boundNs = 3_000_000
	var took []int64
	sim.Seeds(t, 20, func(t *testing.T, seed uint64) {
		c := newCluster(t, seed, 3, nil)
		old := waitLeader(t, c, 20_000_000)
		if ok, _ := c.submitN(t, old, 0, 10); ok != 10 {
			t.Fatal("warm-up did not commit")
		}
		c.w.RunFor(1_000_000)
		crashAt := c.w.Now()
		c.w.Crash(old, false)
		committed := false
		var by rdma.NodeID
		var change LeaderChange
		for _, id := range c.ids {
			if id == old {
				continue
			}
			prev := c.reps[id].cfg.OnLeaderChange
			c.reps[id].cfg.OnLeaderChange = func(ch LeaderChange) {
				if ch.Leader {
					change = ch
				}
				prev(ch)
			}
		}
		c.onReply = func(node rdma.NodeID, _ uint64, _ Index, err error) {
			if err == nil && node != old {
				committed, by = true, node
			}
		}
		// A client keeps offering a proposal to whoever claims to lead.
		var buf [kvCmdBytes]byte
		var offer func()
		offer = func() {
			if committed {
				return
			}
			if l, ok := c.leader(); ok && l != old {
				_ = c.reps[l].Submit(encodeKV(buf[:], true, 1, 99, 99), 99)
			}
			c.w.Schedule(c.w.Now()+10_000, offer)
		}
		offer()
		if !c.w.RunUntil(func() bool { return committed }, crashAt+20_000_000) {
			t.Fatalf("no commit by a new leader 20 ms after the crash; %v", c.leaderLog)
		}
		d := c.w.Now() - crashAt
		took = append(took, d)
		t.Logf("leader %d crashed; node %d committed after %d us (detection %d us, permission %d us, prepare %d us, recovery %d us)",
			old, by, d/1000, (change.AtNs-change.PermissionNs-change.PrepareNs-change.RecoveryNs-crashAt)/1000,
			change.PermissionNs/1000, change.PrepareNs/1000, change.RecoveryNs/1000)
		if change.PermissionNs < 0 || change.PrepareNs < 0 || change.RecoveryNs < 0 || change.AtNs > c.w.Now() {
			t.Errorf("inconsistent leader-change breakdown %+v", change)
		}
		if d > boundNs {
			t.Errorf("failover took %d us, bound %d us", d/1000, boundNs/1000)
		}
		c.checkSafety()
	})
	if len(took) > 0 {
		slices.Sort(took)
		t.Logf("failover to first commit over %d seeds: p50 %d us, max %d us", len(took), took[len(took)/2]/1000, took[len(took)-1]/1000)
	}
}

// A leader marked degraded (hardware arbiter) hands leadership to a healthy
// replica, which keeps committing; the degraded one stays a follower.
func TestDegradedLeaderHandsOver10Seeds(t *testing.T) {
	sim.Seeds(t, 10, func(t *testing.T, seed uint64) {
		c := newCluster(t, seed, 3, nil)
		old := waitLeader(t, c, 20_000_000)
		c.reps[old].SetDegraded(true)
		var nl rdma.NodeID
		if !c.w.RunUntil(func() bool { var ok bool; nl, ok = c.leader(); return ok && nl != old }, c.w.Now()+20_000_000) {
			t.Fatalf("degraded leader %d still leads after 20 ms; %v", old, c.leaderLog)
		}
		if ok, _ := c.submitN(t, nl, 0, 10); ok != 10 {
			t.Fatal("new leader did not commit")
		}
		c.w.RunFor(5_000_000)
		if l, _ := c.leader(); l != nl {
			t.Fatalf("leadership moved again to %d", l)
		}
		c.checkSafety()
	})
}

// With full-size slots (DefaultConfig's 4 KiB payload and 32-slot read
// window, 133 KB a window) a recovery read per peer took longer on the
// simulated 200 MiB/s links than the detector's failure bound, so the
// heartbeat reads queued behind it missed and no failover completed.
// Recovery reads are now bounded by RecoveryReadBytes: failover completes,
// also when each round reads a single slot and the undecided range spans
// many rounds (proposals in flight at the crash).
func TestFailoverWithFullSizeSlots(t *testing.T) {
	for _, tc := range []struct {
		name      string
		readBytes int
	}{
		{"default", 0},
		{"one-slot-rounds", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim.Seeds(t, 5, func(t *testing.T, seed uint64) {
				c := newCluster(t, seed, 3, func(cfg *Config) {
					d := DefaultConfig()
					cfg.MaxPayloadBytes = d.MaxPayloadBytes
					cfg.ReadWindowSlots = 32
					cfg.MaxBulkWriteBytes = d.MaxBulkWriteBytes
					cfg.RecoveryReadBytes = tc.readBytes
				})
				old := waitLeader(t, c, 20_000_000)
				if ok, _ := c.submitN(t, old, 0, 10); ok != 10 {
					t.Fatal("warm-up did not commit")
				}
				c.w.RunFor(1_000_000)
				// A burst in flight at the crash leaves undecided slots.
				var buf [kvCmdBytes]byte
				for i := 10; i < 40; i++ {
					if err := c.reps[old].Submit(encodeKV(buf[:], true, uint8(i%7), uint64(i+1), uint64(i)), uint64(i)); err != nil {
						t.Fatalf("submit %d: %v", i, err)
					}
				}
				c.w.RunFor(40_000)
				crashAt := c.w.Now()
				c.w.Crash(old, false)
				committed := false
				c.onReply = func(node rdma.NodeID, _ uint64, _ Index, err error) {
					if err == nil && node != old {
						committed = true
					}
				}
				var offer func()
				offer = func() {
					if committed {
						return
					}
					if l, ok := c.leader(); ok && l != old {
						_ = c.reps[l].Submit(encodeKV(buf[:], true, 1, 99, 99), 99)
					}
					c.w.Schedule(c.w.Now()+10_000, offer)
				}
				offer()
				if !c.w.RunUntil(func() bool { return committed }, crashAt+20_000_000) {
					t.Fatalf("no commit by a new leader 20 ms after the crash; %v", c.leaderLog)
				}
				t.Logf("new leader committed %d us after the crash", (c.w.Now()-crashAt)/1000)
				c.checkSafety()
			})
		})
	}
}
