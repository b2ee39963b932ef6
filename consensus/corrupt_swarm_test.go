package consensus

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/rdmaconsensus/mu/sim"
)

// TestCorruptionSwarm200Seeds: while clients run, single bits of one
// replica's log are flipped at random (undetected memory errors). Checked:
// a replica never applies a slot whose checksum fails (replicas never
// disagree on an applied command, each command is applied once); every
// replica that fenced itself reported the corruption, and none fenced
// without one; only the damaged replica fences, unless it was the leader
// (its damaged slots travel); and the client history stays linearizable.
func TestCorruptionSwarm200Seeds(t *testing.T) {
	var fenced, runs atomic.Int64
	t.Cleanup(func() {
		t.Logf("%d of %d runs fenced the damaged replica", fenced.Load(), runs.Load())
		if runs.Load() >= 50 && fenced.Load() == 0 {
			t.Error("no run fenced a replica: the flips never hit a committed slot before it was applied")
		}
	})
	sim.Seeds(t, seeds(200), func(t *testing.T, seed uint64) {
		t.Parallel()
		c := newCluster(t, seed, 3, nil)
		rng := rand.New(rand.NewPCG(seed, 0xf11b))
		s := newSwarm(t, c)
		if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
			t.Fatal("no leader")
		}
		for i := 0; i < s.clients; i++ {
			s.issue(i)
		}
		victim := c.ids[rng.IntN(len(c.ids))]
		lay := c.reps[victim].lay
		flips := 1 + rng.IntN(4)
		victimLed := false
		for k := 0; k < flips; k++ {
			c.w.RunFor(int64(500_000 + rng.IntN(2_000_000)))
			// Half the flips hit anywhere in the ring; the others hit a
			// slot the victim holds but has not applied yet (it is
			// stalled meanwhile, its NIC still taking writes).
			pos := uint64(rng.IntN(int(lay.LogSlots)))
			if rng.IntN(2) == 0 {
				c.w.Pause(victim)
				c.w.RunFor(int64(100_000 + rng.IntN(400_000)))
				applied := uint64(c.reps[victim].AppliedIndex())
				var top uint64
				for _, id := range c.ids {
					top = max(top, uint64(c.reps[id].CommitIndex()))
				}
				if top > applied {
					pos = (applied + 1 + uint64(rng.IntN(int(top-applied)))) % lay.LogSlots
				}
			}
			base := lay.LogOffset + pos*lay.SlotStrideBytes
			n := min(int(le.Uint32(c.w.Node(victim).Bytes()[base+slotLenOff:])), c.cfg.MaxPayloadBytes)
			off := base + uint64(rng.IntN(slotHeaderBytes+n+slotTrailer))
			victimLed = victimLed || c.reps[victim].IsLeader()
			c.w.FlipBit(victim, int(off), uint8(rng.IntN(8)))
			c.w.Resume(victim)
		}
		c.w.RunFor(5_000_000)
		s.stopped = true
		c.w.RunFor(5_000_000)
		c.checkSafety()
		for _, id := range c.ids {
			r := c.reps[id]
			if r.Fenced() != (c.corruptions[id] > 0) {
				t.Fatalf("node %d fenced=%v with %d corruption reports (%s)", id, r.Fenced(), c.corruptions[id], sim.ReplayCommand(t, seed))
			}
			// A leader's slot damaged after it was sealed and before the NIC
			// read it reaches the followers damaged, and they fence too
			// (safe, possibly no longer live). Otherwise only the victim may.
			if id != victim && r.Fenced() && !victimLed {
				t.Fatalf("node %d fenced although only node %d's memory was damaged: %v", id, victim, c.leaderLog)
			}
		}
		runs.Add(1)
		if c.reps[victim].Fenced() {
			fenced.Add(1)
		}
		checkLinearizable(t, seed, s.ops)
	})
}
