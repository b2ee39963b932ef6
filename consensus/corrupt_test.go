package consensus

import (
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/hwmon"
	"github.com/rdmaconsensus/mu/pullscore"
)

// A committed slot whose checksum fails is never applied: the replica
// counts it, reports it and fences itself; the others carry on.
func TestCorruptedSlotFencesAndIsNeverApplied(t *testing.T) {
	c := newCluster(t, 3, 3, nil)
	var reports []CorruptionReport
	if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
		t.Fatal("no leader")
	}
	ldr, _ := c.leader()
	victim := c.ids[0]
	if victim == ldr {
		victim = c.ids[1]
	}
	ver := &hwmon.Verifier{}
	c.reps[victim].cfg.Verifier = ver
	prev := c.reps[victim].cfg.OnCorruption
	c.reps[victim].cfg.OnCorruption = func(r CorruptionReport) { reports = append(reports, r); prev(r) }
	if ok, _ := c.submitN(t, ldr, 0, 20); ok != 20 {
		t.Fatal("warm-up proposals did not commit")
	}
	c.w.RunFor(200_000)
	base := c.reps[victim].AppliedIndex()
	// The victim stalls; the other two commit more.
	c.w.Pause(victim)
	if ok, _ := c.submitN(t, ldr, 20, 40); ok != 40 {
		t.Fatal("proposals did not commit with one follower paused")
	}
	c.w.RunFor(200_000)
	bad := uint64(base) + 2
	if v, st := decodeSlot(c.reps[victim].slotBuf(bad), bad, c.cfg.MaxPayloadBytes); st != slotOK {
		t.Fatalf("victim's slot %d not complete before the flip: %v %+v", bad, st, v)
	}
	c.w.FlipBit(victim, int(c.reps[victim].lay.SlotOffset(bad))+slotHeaderBytes+3, 5)
	c.w.Resume(victim)
	c.w.RunFor(2_000_000)

	r := c.reps[victim]
	if !r.Fenced() {
		t.Fatalf("victim applied %d, not fenced after a checksum failure at %d", r.AppliedIndex(), bad)
	}
	if got := r.AppliedIndex(); got != Index(bad-1) {
		t.Fatalf("victim applied up to %d, want exactly %d (the slot before the corrupt one)", got, bad-1)
	}
	if r.Stats().CorruptSlots != 1 || len(reports) != 1 || reports[0].Index != Index(bad) {
		t.Fatalf("corruption counted %d, reported %+v; want one report of index %d", r.Stats().CorruptSlots, reports, bad)
	}
	// The failure is counted where the arbiter's log-checksum row reads
	// it, and that row fences.
	if n := ver.Counts(); n.ReadFailures != 1 || n.ReadsTotal != uint64(bad) || n.WriteFailures != 0 {
		t.Fatalf("verifier counted %+v; want %d reads (one per slot checked), 1 read failure", n, bad)
	}
	arb, err := hwmon.NewArbiter(hwmon.DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	cnt := ver.Counts()
	if rep := arb.Evaluate(hwmon.Snapshot{At: time.Unix(0, c.w.Now()), Checksum: &cnt}); rep.Verdict != hwmon.Failed || rep.Reasons[0].Row != hwmon.RowLogChecksum {
		t.Fatalf("arbiter on the verifier's counts: %v %v", rep.Verdict, rep.Reasons)
	}
	if h := c.reps[ldr].Detector().PeerHealth(victim); h != pullscore.Fenced {
		t.Fatalf("leader sees the victim as %v, want fenced", h)
	}
	if err := r.Submit([]byte("x"), 1); err != ErrFenced {
		t.Fatalf("fenced replica accepted a proposal: %v", err)
	}
	// The other two keep committing.
	if ok, _ := c.submitN(t, ldr, 60, 10); ok != 10 {
		t.Fatal("cluster stopped committing after one replica fenced")
	}
	c.checkSafety()
}

// A slot whose checksum passes but whose batch framing is inconsistent (a
// frame overrunning the payload, or 1 to 3 trailing bytes) was written by a
// faulty peer: it is reported as corruption and fences the replica, and no
// command of it is applied.
func TestBadFramingFencesAndIsNeverApplied(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"overrun", []byte{1, 0, 0, 0, 'a', 9, 0, 0, 0, 'b'}},
		{"trailing", []byte{1, 0, 0, 0, 'a', 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, 3, nil)
			if !c.w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 20_000_000) {
				t.Fatal("no leader")
			}
			ldr, _ := c.leader()
			victim := c.ids[0]
			if victim == ldr {
				victim = c.ids[1]
			}
			var reports []CorruptionReport
			prev := c.reps[victim].cfg.OnCorruption
			c.reps[victim].cfg.OnCorruption = func(r CorruptionReport) { reports = append(reports, r); prev(r) }
			if ok, _ := c.submitN(t, ldr, 0, 20); ok != 20 {
				t.Fatal("warm-up proposals did not commit")
			}
			c.w.RunFor(200_000)
			base := c.reps[victim].AppliedIndex()
			c.w.Pause(victim)
			if ok, _ := c.submitN(t, ldr, 20, 40); ok != 40 {
				t.Fatal("proposals did not commit with one follower paused")
			}
			c.w.RunFor(200_000)
			r := c.reps[victim]
			bad := uint64(base) + 2
			buf := r.slotBuf(bad)
			v, st := decodeSlot(buf, bad, c.cfg.MaxPayloadBytes)
			if st != slotOK {
				t.Fatalf("victim's slot %d not complete: %v", bad, st)
			}
			applied := r.Stats().Commands
			encodeSlot(buf, bad, v.proposal, v.hint, tc.payload)
			if _, st := decodeSlot(buf, bad, c.cfg.MaxPayloadBytes); st != slotOK {
				t.Fatalf("rewritten slot does not pass its checksum: %v", st)
			}
			// Commands applied before the bad slot: those of the slot in between.
			mid, _ := decodeSlot(r.slotBuf(bad-1), bad-1, c.cfg.MaxPayloadBytes)
			want := applied
			if uint64(base) < bad-1 {
				forEachCommand(mid.payload, func([]byte) { want++ })
			}
			c.w.Resume(victim)
			c.w.RunFor(2_000_000)

			if !r.Fenced() {
				t.Fatalf("victim applied %d, not fenced after bad framing at %d", r.AppliedIndex(), bad)
			}
			if got := r.AppliedIndex(); got != Index(bad-1) {
				t.Fatalf("victim applied up to %d, want exactly %d", got, bad-1)
			}
			if got := r.Stats().Commands; got != want {
				t.Fatalf("victim applied %d commands, want %d: part of the bad slot was applied", got, want)
			}
			if r.Stats().CorruptSlots != 1 || len(reports) != 1 || reports[0].Index != Index(bad) {
				t.Fatalf("corruption counted %d, reported %+v; want one report of index %d", r.Stats().CorruptSlots, reports, bad)
			}
			if ok, _ := c.submitN(t, ldr, 60, 10); ok != 10 {
				t.Fatal("cluster stopped committing after one replica fenced")
			}
		})
	}
}
