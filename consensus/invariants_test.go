package consensus

import (
	"github.com/rdmaconsensus/mu/rdma"
)

// invariants checks, after every simulator event, what must hold at every
// instant and not only when a replica applies (recordApply) or when a test
// looks (its checkpoints), so a run stops at the event that broke it:
//   - no replica has applied a command another replica applied differently
//     at the same index (recordApply's findings, reported at once);
//   - a replica's commit index never decreases while its process lives (a
//     restarted replica is a new process and starts over);
//   - every slot a replica holds complete for an index it knows committed
//     but has not applied yet carries what the other replicas applied or
//     hold committed at that index;
//   - virtual time advances: a replica stepping, posting and failing in a
//     loop at one instant would otherwise hang the test, not fail it.
type invariants struct {
	c    *cluster
	fail func(format string, args ...any)
	// at is the virtual time of the last event; same counts the events
	// since then at that time.
	at   int64
	same int
	// proc and commit are, per member, the replica process last seen and
	// the commit index it had.
	proc   []*Replica
	commit []uint64
	// held is the payload first seen committed, per index, in a slot not
	// yet applied; compared with later sightings and with what is applied.
	held map[uint64]string
}

// maxEventsPerInstant is far above what a healthy cluster processes at one
// virtual instant (a few per replica and connection).
const maxEventsPerInstant = 100_000

// watch installs the invariant checks on c's world. fail reports the first
// violation and must end the test (t.Fatalf or t.FailNow).
func (c *cluster) watch(fail func(format string, args ...any)) {
	v := &invariants{c: c, fail: fail, proc: make([]*Replica, len(c.ids)), commit: make([]uint64, len(c.ids)), held: map[uint64]string{}}
	c.w.SetEventHook(v.check)
}

func (v *invariants) check() {
	c := v.c
	if len(c.violations) > 0 {
		v.fail("safety at %d ns: %s", c.w.Now(), c.violations[0])
	}
	if now := c.w.Now(); now != v.at {
		v.at, v.same = now, 0
	} else if v.same++; v.same > maxEventsPerInstant {
		v.fail("livelock: %d events at %d ns without virtual time advancing", v.same, now)
	}
	for m, id := range c.ids {
		if c.w.Node(id).Crashed() {
			continue
		}
		r := c.reps[id]
		commit, applied := uint64(r.CommitIndex()), uint64(r.AppliedIndex())
		if v.proc[m] != r {
			v.proc[m], v.commit[m] = r, 0
		}
		if commit < v.commit[m] {
			v.fail("node %d commit index went back from %d to %d at %d ns", id, v.commit[m], commit, c.w.Now())
		}
		v.commit[m] = commit
		// Slots further than the ring ahead of applied were reused.
		for i := applied + 1; i <= min(commit, applied+r.lay.LogSlots); i++ {
			s, st := decodeSlot(r.slotBuf(i), i, r.cfg.MaxPayloadBytes)
			if st != slotOK {
				continue
			}
			v.compare(id, i, s.payload)
		}
	}
}

// compare checks a committed slot's payload at index i on node id against
// what was applied or seen committed there before.
func (v *invariants) compare(id rdma.NodeID, i uint64, payload []byte) {
	c := v.c
	if seq := c.applied[Index(i)]; len(seq) > 0 {
		same := sameCommands(payload, seq)
		if vs, conf := decodeConf(payload); conf {
			same = len(seq) == 1 && string(seq[0]) == string(confRecord(c.reps[id].votersOf(vs)))
		}
		if !same {
			v.fail("node %d holds a committed slot at index %d (commit %d) unlike the commands applied there: %x vs %x (at %d ns)\n%s",
				id, i, c.reps[id].CommitIndex(), payload, seq, c.w.Now(), v.slots(i))
		}
		return
	}
	if prev, ok := v.held[i]; !ok {
		v.held[i] = string(payload)
	} else if prev != string(payload) {
		v.fail("node %d holds a committed slot at index %d unlike another replica's committed slot: %x vs %x (at %d ns)\n%s",
			id, i, payload, prev, c.w.Now(), v.slots(i))
	}
}

// slots describes every replica's slot at index i.
func (v *invariants) slots(i uint64) string {
	s := ""
	for _, id := range v.c.ids {
		s += v.c.reps[id].slotInfo(i) + "\n"
	}
	return s
}

// sameCommands reports whether a slot payload frames exactly the commands seq.
func sameCommands(payload []byte, seq [][]byte) bool {
	k := 0
	ok := forEachCommand(payload, func(cmd []byte) {
		if k < len(seq) && string(seq[k]) == string(cmd) {
			k++
		} else {
			k = len(seq) + 1 // a mismatch: never equal again
		}
	})
	return ok && k == len(seq)
}
