package consensus

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/rdmaconsensus/mu/rdma"
)

// Membership changes (docs/membership.md). Config.Members is the universe
// of replicas that may ever take part: every one has its connections, its
// slots in the region and its proposal numbers from the start. The voters
// are a subset of it, changed through the log one member at a time. The
// others are learners: the leader replicates to them like to any follower,
// but no quorum counts them and they never stand for election.
//
// A configuration entry committed at index s governs the indexes from
// s+LogSlots on (an α-window of the log's length): whoever writes index i
// has applied i−LogSlots (the ring's reclaim rule), so it knows the
// configuration of i from its committed prefix, and a candidate, whose
// recovery never reaches past applied+LogSlots+1, knows the configuration
// of every index it decides. Decisions are taken by a majority of every
// voter set that may govern the indexes concerned (joint while a change is
// pending), and a new change is accepted only once the previous one is in
// force, so the configurations a stale candidate may still believe in are
// adjacent to the real one: their majorities intersect.

// voterSet has bit m set when the member at index m of the sorted
// Config.Members votes.
type voterSet uint16

func (v voterSet) has(m int) bool { return v&(1<<uint(m)) != 0 }
func (v voterSet) size() int      { return bits.OnesCount16(uint16(v)) }
func (v voterSet) majority() int  { return v.size()/2 + 1 }

// membership is what this replica's committed prefix says about voters.
type membership struct {
	base voterSet // in force for every index below pendingIdx+LogSlots
	// pending is the voter set of the configuration entry at pendingIdx
	// (0: none), in force from pendingIdx+LogSlots on.
	pending    voterSet
	pendingIdx uint64
}

// latest is the newest voter set this replica knows of.
func (m membership) latest() voterSet {
	if m.pendingIdx != 0 {
		return m.pending
	}
	return m.base
}

// Configuration entries: a slot payload that no batch can be (a frame
// length of 2^32−1 overruns any payload), a tag, and the new voter set.
const (
	confFrame  = 0xFFFFFFFF
	confTag    = 0x4655434d // "MCUF"
	confBytes  = 12
	confVoters = 8
)

func encodeConf(dst []byte, v voterSet) int {
	le.PutUint32(dst[0:], confFrame)
	le.PutUint32(dst[4:], confTag)
	le.PutUint16(dst[confVoters:], uint16(v))
	le.PutUint16(dst[confVoters+2:], 0)
	return confBytes
}

// decodeConf reports whether payload is a configuration entry and its
// voter set.
func decodeConf(payload []byte) (voterSet, bool) {
	if len(payload) != confBytes || le.Uint32(payload) != confFrame || le.Uint32(payload[4:]) != confTag {
		return 0, false
	}
	return voterSet(le.Uint16(payload[confVoters:])), true
}

// quorate reports whether the members in have form a majority of every
// voter set that may govern what is being decided: the base, and the
// pending set while a change is on its way.
func (r *Replica) quorate(have voterSet) bool {
	if (have & r.mem.base).size() < r.mem.base.majority() {
		return false
	}
	if r.mem.pendingIdx != 0 && (have&r.mem.pending).size() < r.mem.pending.majority() {
		return false
	}
	return true
}

// self is this replica's bit.
func (r *Replica) selfBit() voterSet { return 1 << uint(r.selfIdx) }

// bit is a peer's bit.
func (p *peer) bit() voterSet { return 1 << uint(p.member) }

// quorumIndex is the highest index that a majority of every voter set in
// force holds, given each member's index in vals (by member position).
func (r *Replica) quorumIndex(vals []uint64) uint64 {
	c := r.setIndex(vals, r.mem.base)
	if r.mem.pendingIdx != 0 {
		c = min(c, r.setIndex(vals, r.mem.pending))
	}
	return c
}

// setIndex is the highest index held by a majority of set.
func (r *Replica) setIndex(vals []uint64, set voterSet) uint64 {
	k := 0
	for m := 0; m < r.n; m++ {
		if set.has(m) {
			r.scratch[k] = vals[m]
			k++
		}
	}
	s := r.scratch[:k]
	// Insertion sort, descending: at most 15 members, no allocation.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] > s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[set.majority()-1]
}

// applyConf records the configuration entry committed at index i.
func (r *Replica) applyConf(i uint64, v voterSet) {
	r.mem.pending, r.mem.pendingIdx = v, i
	r.stats.ConfChanges++
	r.foldConf()
	if r.cfg.OnConfChange != nil {
		r.cfg.OnConfChange(Index(i), r.votersOf(v))
	}
}

// votersOf lists the members of v in id order.
func (r *Replica) votersOf(v voterSet) []rdma.NodeID {
	out := make([]rdma.NodeID, 0, v.size())
	for m, id := range r.cfg.Members {
		if v.has(m) {
			out = append(out, id)
		}
	}
	return out
}

// foldConf makes a pending configuration the base once every index still
// to be decided here lies in its range.
func (r *Replica) foldConf() {
	if r.mem.pendingIdx != 0 && r.applied+1 >= r.mem.pendingIdx+r.lay.LogSlots {
		r.mem.base, r.mem.pendingIdx, r.mem.pending = r.mem.pending, 0, 0
	}
	r.publishVoters()
}

// publishVoters tells the detector who may lead and the callers who votes.
func (r *Replica) publishVoters() {
	v := r.mem.latest()
	if r.votersA.Swap(uint32(v)) == uint32(v) && r.votersSet {
		return
	}
	r.votersSet = true
	if d, ok := r.det.(interface{ SetStandby(on bool) }); ok {
		// Peers that have not applied the change yet would otherwise
		// still name a removed voter, which no longer stands.
		d.SetStandby(!v.has(r.selfIdx))
	}
	if d, ok := r.det.(interface{ SetVoters(ids uint64) }); ok {
		var ids uint64
		for m, id := range r.cfg.Members {
			if v.has(m) {
				ids |= 1 << uint(id)
			}
		}
		d.SetVoters(ids)
	}
}

// isVoter reports whether this replica may stand for election: it votes in
// the newest configuration it knows.
func (r *Replica) isVoter() bool { return r.mem.latest().has(r.selfIdx) }

// Snapshots carry the membership they were taken under, ahead of the
// state machine's bytes.
const (
	snapMemMagic = 0x4d454d42 // "BMEM"
	snapMemBytes = 16
)

func (r *Replica) wrapSnapshot(dst []byte) {
	le.PutUint32(dst[0:], snapMemMagic)
	le.PutUint16(dst[4:], uint16(r.mem.base))
	le.PutUint16(dst[6:], uint16(r.mem.pending))
	le.PutUint64(dst[8:], r.mem.pendingIdx)
}

// unwrapSnapshot splits a snapshot into the membership it carries and the
// state machine's bytes. One without the prefix leaves the membership as
// it is.
func (r *Replica) unwrapSnapshot(data []byte) []byte {
	if len(data) < snapMemBytes || le.Uint32(data) != snapMemMagic {
		return data
	}
	r.mem.base = voterSet(le.Uint16(data[4:]))
	r.mem.pending = voterSet(le.Uint16(data[6:]))
	r.mem.pendingIdx = le.Uint64(data[8:])
	return data[snapMemBytes:]
}

// Errors of a membership change.
var (
	// ErrConfChangeBusy: another change is under way, or the previous one
	// did not come into force within 200 election timeouts, or a
	// leadership transfer is under way.
	ErrConfChangeBusy = errors.New("consensus: a membership change is already under way")
	// ErrNotCaughtUp: the member to promote did not catch up in time.
	ErrNotCaughtUp = errors.New("consensus: the member did not catch up in time")
)

// confChange is the leader's change under way.
type confChange struct {
	active  bool
	gen     uint64
	voters  voterSet
	member  int
	add     bool
	startAt int64
	index   uint64 // the entry's index once written; 0 before
}

type confResult struct {
	gen uint64
	err error
}

// confWaitElections bounds, in election timeouts, how long a promotion
// waits for its learner to catch up.
const confWaitElections = 200

// AddVoter makes member id, a learner, a voter, and RemoveVoter makes a
// voter a learner. This replica must lead. They return once the change is
// in force (committed, and the log has moved LogSlots past it), or with
// why not: a *NotLeaderError, ErrConfChangeBusy, ErrNotCaughtUp (the
// learner is not replicating close to the commit index within 200 election
// timeouts), ErrLeadershipLost (the change may still take effect: read
// Voters on the new leader), ErrInvalidConfig, or ctx's error (the change
// may still take effect). Safe from any goroutine but the driver's.
func (r *Replica) AddVoter(ctx context.Context, id rdma.NodeID) error {
	return r.changeVoters(ctx, id, true)
}

// RemoveVoter: see AddVoter. Removing the leader makes it step down once
// the change is in force.
func (r *Replica) RemoveVoter(ctx context.Context, id rdma.NodeID) error {
	return r.changeVoters(ctx, id, false)
}

func (r *Replica) changeVoters(ctx context.Context, id rdma.NodeID, add bool) error {
	gen, err := r.StartConfChange(id, add)
	if err != nil {
		return err
	}
	for {
		select {
		case res := <-r.confDone:
			if res.gen == gen {
				return res.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// StartConfChange asks this replica, which must lead, to add (or remove)
// voter id without blocking, and returns the request's generation. The
// outcome goes to the handler set with SetConfChangeHandler (and to
// AddVoter's waiter) from a later Step.
func (r *Replica) StartConfChange(id rdma.NodeID, add bool) (uint64, error) {
	m, err := r.leaderRequest(id, "node")
	if err != nil {
		return 0, err
	}
	v := voterSet(r.votersA.Load())
	switch {
	case add && v.has(m):
		return 0, fmt.Errorf("%w: node %d already votes", ErrInvalidConfig, id)
	case !add && !v.has(m):
		return 0, fmt.Errorf("%w: node %d does not vote", ErrInvalidConfig, id)
	case !add && v.size() <= minVoters:
		return 0, fmt.Errorf("%w: removing node %d would leave fewer than %d voters", ErrInvalidConfig, id, minVoters)
	}
	gen := r.confGen.Add(1)
	op := uint64(m + 1)
	if add {
		op |= 0x80
	}
	if !r.confReq.CompareAndSwap(0, gen<<8|op) {
		return 0, ErrConfChangeBusy
	}
	return gen, nil
}

// leaderRequest is the check every request to the leader starts with:
// open, not fenced, leading, and id (what names it) a member. It returns
// id's member index.
func (r *Replica) leaderRequest(id rdma.NodeID, what string) (int, error) {
	if r.closing.Load() {
		return 0, ErrClosed
	}
	if r.fencedA.Load() {
		return 0, ErrFenced
	}
	if !r.isLeader.Load() {
		l, ok := r.Leader()
		return 0, &NotLeaderError{Leader: l, Known: ok}
	}
	if m := slices.Index(r.cfg.Members, id); m >= 0 {
		return m, nil
	}
	return 0, fmt.Errorf("%w: %s %d is not in Members", ErrInvalidConfig, what, id)
}

// minVoters keeps a group able to lose one voter.
const minVoters = 3

// ConfChangeHandler receives the outcome of a StartConfChange.
type ConfChangeHandler func(gen uint64, err error)

// SetConfChangeHandler sets where StartConfChange outcomes go. Call
// before stepping.
func (r *Replica) SetConfChangeHandler(fn ConfChangeHandler) { r.onConf = fn }

// Voters returns the voters of the newest configuration this replica
// knows, in id order. Safe from any goroutine.
func (r *Replica) Voters() []rdma.NodeID { return r.votersOf(voterSet(r.votersA.Load())) }

// finishConf reports the change's outcome.
func (r *Replica) finishConf(err error) {
	c := r.conf
	r.conf = confChange{}
	if !c.active {
		return
	}
	if r.onConf != nil {
		r.onConf(c.gen, err)
	}
	select {
	case r.confDone <- confResult{gen: c.gen, err: err}:
	default:
		// Nobody waits for an older result: replace it.
		select {
		case <-r.confDone:
		default:
		}
		r.confDone <- confResult{gen: c.gen, err: err}
	}
}

// takeConf picks up a caller's request.
func (r *Replica) takeConf(now int64) {
	req := r.confReq.Load()
	if req == 0 || r.conf.active {
		return
	}
	r.confReq.Store(0)
	m := int(req&0x7f) - 1
	add := req&0x80 != 0
	r.conf = confChange{active: true, gen: req >> 8, member: m, add: add, startAt: now}
	if r.role != roleLeader {
		r.finishConf(r.notLeader())
		return
	}
	if r.xfer.active {
		r.finishConf(ErrConfChangeBusy)
	}
}

// confVoters is the voter set the change under way writes, once the
// previous change is in force.
func (r *Replica) confVoters() (voterSet, error) {
	c := &r.conf
	v := r.mem.base
	if c.add {
		v |= 1 << uint(c.member)
	} else {
		v &^= 1 << uint(c.member)
	}
	if v == r.mem.base || v.size() < minVoters {
		return 0, fmt.Errorf("%w: voters would be %v", ErrInvalidConfig, r.votersOf(v))
	}
	return v, nil
}

// confStep is the leader's part of a change: wait for the previous change
// to be in force and for a learner to catch up, write the entry, then pad
// the log until the change is in force.
func (r *Replica) confStep(now int64) {
	r.takeConf(now)
	c := &r.conf
	if c.active && c.index == 0 {
		if r.mem.pendingIdx != 0 {
			// The previous change (another leader's, or an earlier one
			// of this term) is not in force yet: the padding below
			// brings it there shortly.
			if now-c.startAt > confWaitElections*r.cfg.ElectionTimeoutNs {
				r.finishConf(ErrConfChangeBusy)
				return
			}
		} else if v, err := r.confVoters(); err != nil {
			r.finishConf(err)
			return
		} else {
			c.voters = v
		}
	}
	if c.active && c.index == 0 && c.voters != 0 {
		if c.add && c.member == r.selfIdx {
			// A leader about to step down, removed by the previous change.
			r.finishConf(fmt.Errorf("%w: node %d leads and cannot add itself", ErrInvalidConfig, r.self))
			return
		}
		if c.add {
			p := &r.peers[r.byMem[c.member]]
			if p.state != peerReplicating || p.acked+uint64(r.cfg.MaxInflightSlots) < r.commit {
				if now-c.startAt > confWaitElections*r.cfg.ElectionTimeoutNs {
					r.finishConf(ErrNotCaughtUp)
				}
				return
			}
		}
		if r.next-1-r.commit >= uint64(r.cfg.MaxInflightSlots) || !r.reclaimable(r.next) {
			return
		}
		i := r.next
		n := encodeConf(r.slotBuf(i)[slotHeaderBytes:], c.voters)
		c.index = i
		r.writeSlot(i, n)
		return
	}
	// In force once the log passes pendingIdx+LogSlots: fill it with empty
	// entries when nothing else is proposed, so the change does not wait
	// for traffic.
	if r.mem.pendingIdx == 0 {
		return
	}
	end := r.mem.pendingIdx + r.lay.LogSlots
	for r.next < end && r.next-1-r.commit < uint64(r.cfg.MaxInflightSlots) {
		r.ring.mu.Lock()
		queued := r.ring.qLen
		r.ring.mu.Unlock()
		if queued > 0 || !r.reclaimable(r.next) {
			return
		}
		r.writeSlot(r.next, 0)
	}
}

// confApplied is called after each apply: the change this leader wrote is
// done once in force here.
func (r *Replica) confApplied() {
	if r.conf.active && r.conf.index != 0 && r.applied >= r.conf.index && r.mem.pendingIdx == 0 {
		r.finishConf(nil)
	}
}
