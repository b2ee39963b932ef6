package consensus

import (
	"fmt"

	"github.com/rdmaconsensus/mu/rdma"
)

// Adversarial fault kinds. An outside suite found four bugs that the
// classic kinds never produced; each kind recreates the shape of one:
//
//   - isolate-leader-inbound: every follower's link towards the leader is
//     cut one way (the leader's writes still land; their acks and its
//     reads die), then healed while the deposed leader may still believe
//     it leads, so it reads headers advanced by its successor's commits;
//   - crossed: two one-way cuts a->b and c->d that move every few hundred
//     microseconds for a while;
//   - flipword: one bit flipped in any word of a slot (index, proposal,
//     hint, length, reserved, payload, crc, canary) or of the header line
//     of a replica that does not lead;
//   - midslot: the leader is deposed and its successor crashed or cut off
//     at a random moment of its first writes, which rewrite the followers'
//     slots (big-slot runs spread a slot over several writes);
//   - snapcrash: a follower is cut off until it falls off the log, then
//     the snapshot's sender or receiver fails around the push;
//   - snaphole: a follower is left with slots it never applied, holes, and
//     a snapshot restored above them, and is then likely to lead.
var adversarialFaults = []string{"isolate-leader-inbound", "crossed", "flipword", "midslot", "snapcrash", "snaphole"}

// bigSlots makes a full slot four writes long, so writing one can be cut
// short between writes.
func bigSlots(cfg *Config) {
	cfg.MaxPayloadBytes = 4096
	cfg.MaxWriteBytes = 1024
}

// slowGiveUpNs is the election timeout of runs whose leaders take long to
// give up: a leader that lost its majority steps down after about twice
// this, so cuts of a few milliseconds heal while it still leads.
const slowGiveUpNs = 10_000_000

// bigCommandPad bounds the padding of commands in big-slot runs: a slot of
// one to a few commands spans one to five writes.
const bigCommandPad = 1500

// injectAdversarial applies one adversarial fault (a is a random replica,
// dur a random duration) and describes it, or returns "" when it does not
// apply now.
func (s *swarm) injectAdversarial(kind string, a rdma.NodeID, dur int64) string {
	switch kind {
	case "isolate-leader-inbound":
		return s.isolateLeaderInbound()
	case "crossed":
		end := s.c.w.Now() + dur
		s.c.w.Schedule(s.c.w.Now(), func() { s.crossed(end) })
		return fmt.Sprintf("crossed for %d", dur)
	case "flipword":
		return s.flipWord()
	case "midslot":
		return s.midSlot()
	case "snapcrash":
		return s.snapCrash(a)
	case "snaphole":
		return s.snapHole(a)
	}
	panic("swarm: unknown fault " + kind)
}

// other is a random replica other than id.
func (s *swarm) other(id rdma.NodeID) rdma.NodeID {
	for {
		if o := s.c.ids[s.rng.IntN(len(s.c.ids))]; o != id {
			return o
		}
	}
}

// isolateLeaderInbound cuts every follower's link towards the leader for
// 0.3 ms to 1.6 election timeouts. The followers elect a successor within
// about a millisecond; the leader, which only misses acks and reads, gives
// up after about two election timeouts, so most cuts heal while it still
// believes it leads.
func (s *swarm) isolateLeaderInbound() string {
	c, w := s.c, s.c.w
	l, ok := c.leader()
	if !ok {
		return ""
	}
	dur := 300_000 + s.rng.Int64N(c.cfg.ElectionTimeoutNs*16/10)
	for _, id := range c.ids {
		if id != l {
			w.Cut(id, l)
		}
	}
	w.Schedule(w.Now()+dur, func() {
		for _, id := range c.ids {
			if id != l {
				w.Heal(id, l)
			}
		}
	})
	return fmt.Sprintf("isolate-leader-inbound %d for %d", l, dur)
}

// crossed cuts two random links one way each and moves the cuts every 100
// to 500 us until end, or until faults stop.
func (s *swarm) crossed(end int64) {
	w := s.c.w
	if s.calm || w.Now() >= end {
		return
	}
	a := s.c.ids[s.rng.IntN(len(s.c.ids))]
	b := s.other(a)
	x := s.c.ids[s.rng.IntN(len(s.c.ids))]
	y := s.other(x)
	w.Cut(a, b)
	w.Cut(x, y)
	s.faults = append(s.faults, fmt.Sprintf("%d crossed cuts %d->%d %d->%d", w.Now(), a, b, x, y))
	w.Schedule(min(w.Now()+int64(100_000+s.rng.IntN(400_000)), end), func() {
		w.Heal(a, b)
		w.Heal(x, y)
		s.crossed(end)
	})
}

// word is a field of the region a flip may hit: its offset and width.
type word struct {
	name      string
	off, bits int
}

// headerWords are the words of the header line.
var headerWords = []word{
	{"min-proposal", hdrMinProposal, 64}, {"first-undecided", hdrFUO, 64}, {"commit", hdrCommit, 64},
	{"caught-up", hdrCaughtUp, 64}, {"flags", hdrFlags, 64}, {"leader-beat", hdrLeaderBeat, 64},
}

// flipWord flips one bit of one word of a slot, or of the header line, of
// a replica that does not lead. Not the leader's: a flip in one of its
// slots before the NIC reads it travels to the followers, which then fence
// with undamaged memory of their own. Half the slot flips hit the last
// few committed indices, which a lagging replica may still need. At most
// f replicas are damaged, crashed or rejoining at once.
func (s *swarm) flipWord() string {
	c, w, rng := s.c, s.c.w, s.rng
	f := s.budget()
	var victims []rdma.NodeID
	for _, id := range c.ids {
		r := c.reps[id]
		if !w.Node(id).Crashed() && !r.IsLeader() && (s.damaged[r] || s.downs() < f) {
			victims = append(victims, id)
		}
	}
	if len(victims) == 0 {
		return ""
	}
	v := victims[rng.IntN(len(victims))]
	r := c.reps[v]
	if rng.IntN(4) == 0 {
		at := headerWords[rng.IntN(len(headerWords))]
		return fmt.Sprintf("flipword node %d header %s", v, s.flip(v, at))
	}
	var top uint64
	for _, id := range c.ids {
		top = max(top, uint64(c.reps[id].CommitIndex()))
	}
	i := top + 2 - uint64(rng.IntN(int(min(top+1, r.lay.LogSlots))))
	if rng.IntN(2) == 0 {
		i = max(top, 4) - 3 + uint64(rng.IntN(5))
	}
	words := s.slotWords(v, i)
	at := words[rng.IntN(len(words))]
	return fmt.Sprintf("flipword node %d slot %d %s", v, i, s.flip(v, at))
}

// slotWords are the words of the ring position of index i on node id, at
// their offsets in its region; the payload word is one random byte of the
// payload, when there is one. The length read from the slot (clamped)
// places the checksum and the canary.
func (s *swarm) slotWords(id rdma.NodeID, i uint64) []word {
	r := s.c.reps[id]
	base := int(r.lay.SlotOffset(i))
	n := min(int(le.Uint32(s.c.w.Node(id).Bytes()[base+slotLenOff:])), r.cfg.MaxPayloadBytes)
	total := int(encodedSlotBytes(n))
	words := []word{
		{"index", base + slotIndexOff, 64}, {"proposal", base + slotProposalOff, 64}, {"hint", base + slotHintOff, 64},
		{"length", base + slotLenOff, 32}, {"header-check", base + slotCheckOff, 32},
		{"sealed-proposal", base + total - slotTrailer, 64}, {"crc", base + total - 8, 32}, {"canary", base + total - 4, 32},
	}
	if n > 0 {
		words = append(words, word{"payload", base + slotHeaderBytes + s.rng.IntN(n), 8})
	}
	return words
}

// flip inverts one random bit of word at on node id, records the damage
// and describes it.
func (s *swarm) flip(id rdma.NodeID, at word) string {
	bit := s.rng.IntN(at.bits)
	s.c.w.FlipBit(id, at.off+bit/8, uint8(bit%8))
	s.damaged[s.c.reps[id]] = true
	return fmt.Sprintf("%s bit %d", at.name, bit)
}

// midSlot deposes the leader by pausing it (its log stays) for 1 to 3 ms
// and arms a failure of its successor while its catch-up writes rewrite
// the followers' undecided slots under the new proposal: at a random
// moment of its first 80 us as leader, or as soon as one of those slots
// has landed in part.
func (s *swarm) midSlot() string {
	c, w := s.c, s.c.w
	l, ok := c.leader()
	if !ok {
		return ""
	}
	pause := int64(1_000_000 + s.rng.IntN(2_000_000))
	w.Pause(l)
	w.Schedule(w.Now()+pause, func() { w.Resume(l) })
	c.onLeader = func(x rdma.NodeID) {
		c.onLeader = nil
		fail := func() { s.knockOut(x, "midslot") }
		if s.rng.IntN(2) == 0 {
			s.whenHalfWritten(x, fail)
		} else {
			w.Schedule(w.Now()+int64(s.rng.IntN(80_000)), fail)
		}
	}
	return fmt.Sprintf("midslot: pause leader %d for %d", l, pause)
}

// await polls cond every `every` ns and then runs then(true) once it
// holds, or then(false) after within ns; nothing once faults stop.
func (s *swarm) await(every, within int64, cond func() bool, then func(held bool)) {
	w := s.c.w
	until := w.Now() + within
	var poll func()
	poll = func() {
		switch {
		case s.calm:
		case cond():
			then(true)
		case w.Now() >= until:
			then(false)
		default:
			w.Schedule(w.Now()+every, poll)
		}
	}
	poll()
}

// whenHalfWritten runs fn as soon as, within 200 us, a replica other than
// writer holds a slot that has landed in part (its index word is in
// place, the slot is not complete): writer, the one writing, is between
// two writes of it.
func (s *swarm) whenHalfWritten(writer rdma.NodeID, fn func()) {
	c, w := s.c, s.c.w
	s.await(1_000, 200_000, func() bool {
		for _, id := range c.ids {
			if id == writer || w.Node(id).Crashed() {
				continue
			}
			r := c.reps[id]
			from := uint64(r.AppliedIndex()) + 1
			for i := from; i < from+2*uint64(r.cfg.MaxInflightSlots); i++ {
				b := r.slotBuf(i)
				if le.Uint64(b[slotIndexOff:]) != i {
					continue
				}
				if _, st := decodeSlot(b, i, r.cfg.MaxPayloadBytes); st != slotOK {
					return true
				}
			}
		}
		return false
	}, func(held bool) {
		if held {
			fn()
		}
	})
}

// knockOut crashes id for 0.5 to 3 ms if the crash budget allows; otherwise
// it cuts id's links to every peer one way for longer than the transport
// timeout, so what id posted and has not landed yet never lands.
func (s *swarm) knockOut(id rdma.NodeID, why string) {
	c, w := s.c, s.c.w
	if s.calm || w.Node(id).Crashed() {
		return
	}
	dur := int64(500_000 + s.rng.IntN(2_500_000))
	if s.crash(id, dur) {
		s.faults = append(s.faults, fmt.Sprintf("%d %s: crash %d for %d", w.Now(), why, id, dur))
		return
	}
	dur += w.Config().TransportTimeoutNs
	for _, o := range c.ids {
		if o != id {
			w.Cut(id, o)
		}
	}
	w.Schedule(w.Now()+dur, func() {
		for _, o := range c.ids {
			if o != id {
				w.Heal(id, o)
			}
		}
	})
	s.faults = append(s.faults, fmt.Sprintf("%d %s: cut %d's outbound links for %d", w.Now(), why, id, dur))
}

// topCommit is the highest commit index of any replica.
func (s *swarm) topCommit() Index {
	var top Index
	for _, id := range s.c.ids {
		top = max(top, s.c.reps[id].CommitIndex())
	}
	return top
}

// isolate cuts id off from every other replica, both ways, or heals that.
func (s *swarm) isolate(id rdma.NodeID, cut bool) {
	for _, o := range s.c.ids {
		switch {
		case o == id:
		case cut:
			s.c.w.CutBoth(id, o)
		default:
			s.c.w.Heal(id, o)
			s.c.w.Heal(o, id)
		}
	}
}

// snapCrash cuts follower v off until the highest commit index is a log
// ahead of what it applied (at most 8 ms), heals it, and fails the sender
// or v 0 to 40 us after the next snapshot push starts (within 5 ms).
func (s *swarm) snapCrash(v rdma.NodeID) string {
	c, w := s.c, s.c.w
	if l, ok := c.leader(); !ok || l == v {
		return ""
	}
	s.isolate(v, true)
	s.await(100_000, 8_000_000, func() bool {
		return s.topCommit() > c.reps[v].AppliedIndex()+Index(c.cfg.LogSlots)+2
	}, func(bool) {
		s.isolate(v, false)
		s.faults = append(s.faults, fmt.Sprintf("%d snapcrash: healed %d", w.Now(), v))
		s.failAtSnapshot(v)
	})
	return fmt.Sprintf("snapcrash: cut %d off until it falls off the log", v)
}

// snapshotsSent is how many snapshots each replica has pushed.
func (s *swarm) snapshotsSent() []uint64 {
	n := make([]uint64, len(s.c.ids))
	for k, id := range s.c.ids {
		n[k] = s.c.reps[id].Stats().SnapshotsSent
	}
	return n
}

// snapshotSender is the replica that pushed a snapshot since sent was
// taken, if any.
func (s *swarm) snapshotSender(sent []uint64) (rdma.NodeID, bool) {
	for k, n := range s.snapshotsSent() {
		if id := s.c.ids[k]; n > sent[k] && !s.c.w.Node(id).Crashed() {
			return id, true
		}
	}
	return 0, false
}

// failAtSnapshot waits up to 5 ms for a replica to start a snapshot push
// and knocks it or v out 0 to 40 us later.
func (s *swarm) failAtSnapshot(v rdma.NodeID) {
	w := s.c.w
	sent := s.snapshotsSent()
	s.await(5_000, 5_000_000, func() bool { _, ok := s.snapshotSender(sent); return ok }, func(held bool) {
		if !held {
			return
		}
		victim, _ := s.snapshotSender(sent)
		if s.rng.IntN(2) == 0 {
			victim = v
		}
		w.Schedule(w.Now()+int64(s.rng.IntN(40_000)), func() { s.knockOut(victim, "snapcrash") })
	})
}

// snapHole leaves holes below a snapshot in follower v's log and then
// makes v likely to lead: v pauses (its NIC takes the leader's slots, it
// applies none); in a group of five, another follower y is cut off half a
// log later; v is cut off too once it is nearly a log behind, and healed,
// still paused, a quarter log after that, so the snapshot the leader
// pushes restores before v applies its old slots: v holds them, nothing
// up to the snapshot, and what follows. v resumes once a snapshot was
// sent; then the leader is knocked out and y healed, so v may catch y up
// across the holes. All of it is undone within 20 ms.
func (s *swarm) snapHole(v rdma.NodeID) string {
	c, w := s.c, s.c.w
	l, ok := c.leader()
	if !ok || l == v {
		return ""
	}
	var y rdma.NodeID
	if len(c.ids) >= 5 {
		for y == 0 || y == l || y == v {
			y = c.ids[s.rng.IntN(len(c.ids))]
		}
	}
	slots := Index(c.cfg.LogSlots)
	from := c.reps[v].AppliedIndex()
	w.Pause(v)
	undo := func() {
		w.Resume(v)
		s.isolate(v, false)
		if y != 0 {
			s.isolate(y, false)
		}
	}
	w.Schedule(w.Now()+20_000_000, undo)
	step := func(target Index, then func()) {
		s.await(20_000, 10_000_000, func() bool { return s.topCommit() >= target }, func(held bool) {
			if held {
				then()
			} else {
				undo()
			}
		})
	}
	step(from+slots/2+Index(s.rng.IntN(int(slots/4))), func() {
		if y != 0 {
			s.isolate(y, true)
		}
		step(from+slots-4, func() {
			s.isolate(v, true)
			step(s.topCommit()+slots/4+Index(s.rng.IntN(int(slots/8))), func() {
				s.isolate(v, false)
				sent := s.snapshotsSent()
				s.await(20_000, 5_000_000, func() bool { _, ok := s.snapshotSender(sent); return ok }, func(bool) {
					w.Schedule(w.Now()+100_000, func() {
						w.Resume(v)
						if l, ok := c.leader(); ok && l != v {
							s.knockOut(l, "snaphole")
						}
						if y != 0 {
							s.isolate(y, false)
						}
					})
				})
			})
		})
	})
	return fmt.Sprintf("snaphole: pause %d, cut %d off", v, y)
}
