package consensus

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// A leader paused (CPU stopped, region still served) under load with
// full-size 4 KiB slots, long enough for a takeover, then resumed. The
// node that took over catches the old leader up with full-size slots over
// the link that also carries the old leader's heartbeat reads of it; that
// must not make the old leader declare the new one dead and take the log
// back. Within 2 ms of the resume exactly one replica leads and has
// committed a proposal submitted after the resume, one still leads 5 ms
// later, and every acknowledged proposal is applied by it.
func TestPausedLeaderResumesUnderLoadFullSlots(t *testing.T) {
	const boundNs = 2_000_000
	sim.Seeds(t, 5, func(t *testing.T, seed uint64) {
		c := newClusterSim(t, seed, 3, sim.DefaultConfig(), func(cfg *Config) {
			d := DefaultConfig()
			d.Members = cfg.Members
			d.FailSlow = cfg.FailSlow
			*cfg = d
		})
		old := waitLeader(t, c, 50_000_000)
		var paused rdma.NodeID
		acked := map[uint64]bool{}
		resumeToken := ^uint64(0)
		var committedAfter bool
		c.onReply = func(node rdma.NodeID, token uint64, _ Index, err error) {
			if err != nil {
				return
			}
			acked[token] = true
			if token > resumeToken {
				committedAfter = true
			}
		}
		// A client offers one proposal every 20 us to whoever leads,
		// skipping the paused node (which still believes it leads).
		var buf [kvCmdBytes]byte
		next := uint64(0)
		var offer func()
		offer = func() {
			for _, id := range c.ids {
				if id != paused && c.reps[id].IsLeader() {
					next++
					if c.reps[id].Submit(encodeKV(buf[:], true, uint8(next%7), next, next), next) == nil {
						c.w.SetStepper(id, c.reps[id])
					}
					break
				}
			}
			c.w.Schedule(c.w.Now()+20_000, offer)
		}
		offer()
		c.w.RunFor(2_000_000)
		if len(acked) == 0 {
			t.Fatal("nothing committed during warm-up")
		}
		paused = old
		c.w.Pause(old)
		if !c.w.RunUntil(func() bool {
			for _, id := range c.ids {
				if id != old && c.reps[id].IsLeader() {
					return true
				}
			}
			return false
		}, c.w.Now()+20_000_000) {
			t.Fatalf("no takeover 20 ms after pausing leader %d; %v", old, c.leaderLog)
		}
		c.w.RunFor(1_000_000) // the new leader commits ahead of the paused one
		c.w.Resume(old)
		paused = 0
		resumeToken = next
		c.w.RunFor(boundNs)
		leaders := 0
		for _, id := range c.ids {
			if c.reps[id].IsLeader() {
				leaders++
			}
		}
		if leaders != 1 || !committedAfter {
			t.Fatalf("%d leaders %d us after leader %d resumed, committed since: %v; %v", leaders, boundNs/1000, old, committedAfter, c.leaderLog)
		}
		c.w.RunFor(5_000_000)
		l, ok := c.leader()
		if !ok {
			t.Fatalf("no leader 5 ms later; %v", c.leaderLog)
		}
		for tok := range acked {
			if _, ok := c.sms[l].seen[tok]; !ok {
				t.Fatalf("acknowledged proposal %d not applied by leader %d", tok, l)
			}
		}
		c.checkSafety()
	})
}
