package consensus

import (
	"hash/crc32"

	"github.com/rdmaconsensus/mu/rdma"
)

// Offsets of staging words inside a peer's staging line: the local source
// of small writes, one per purpose so a write in flight is never changed.
const (
	stageMinProposal = 0
	stageCommit      = 8
	stageCaughtUp    = 16
	stageBeat        = 24
)

// degradeHold is how long a replica that failed to lead with a majority
// stays degraded, so peers elect someone else instead of waiting on it.
func (r *Replica) degradeHold() int64 { return 4 * r.cfg.ElectionTimeoutNs }

// stallNs is how long silence lasts before a leader gives up or a node
// calls itself blind: ElectionTimeoutNs, or the detector's measured failure
// bound where the host stalls the nodes for longer (a leader must not give
// up over a stall its detector, and its peers', would ride out).
func (r *Replica) stallNs() int64 {
	if d, ok := r.det.(interface{ FailBoundNs() int64 }); ok {
		return max(r.cfg.ElectionTimeoutNs, d.FailBoundNs())
	}
	return r.cfg.ElectionTimeoutNs
}

// retryNs spaces retries to a failed peer so an errored connection is not
// hammered in a tight loop while the permission manager repairs it.
func (r *Replica) retryNs() int64 { return r.cfg.HeaderPollNs }

func (r *Replica) alivePeers() int {
	n := 0
	for i := range r.peers {
		if r.det.Alive(r.peers[i].id) {
			n++
		}
	}
	return n
}

// stepRole runs the role's work and the transitions between roles.
func (r *Replica) stepRole(now int64) (wake int64) {
	if r.fenced {
		return 0
	}
	if c, ok := openWord(le.Uint64(r.region[hdrCaughtUp:])); r.rejoining && ok && c != 0 {
		r.rejoining = false
		r.publishHeader()
	}
	// A replica that cannot see a majority, lost its log, or recently
	// failed to lead advertises itself degraded so peers prefer another.
	// Not seeing a majority alive must last a while before it counts: a
	// peer busy in a 540 us connection Reset misses a few heartbeats.
	seesQuorum := r.alivePeers()+1 >= r.q
	if seesQuorum {
		r.blindSince = 0
	} else if r.blindSince == 0 {
		r.blindSince = now
	}
	blind := r.blindSince != 0 && now-r.blindSince > r.stallNs()
	if r.role == roleLeader && r.noQuorumSince == 0 {
		blind = false // its writes reach a majority: better evidence than heartbeats
	}
	h := HealthHealthy
	if r.rejoining || r.behind || blind || now < r.degradeUntil || r.degradedA.Load() {
		h = HealthDegraded
	}
	if h != r.health {
		r.setHealth(h)
	}
	ldr, ok := r.det.Leader()
	able := !r.rejoining && !r.behind && !blind
	// Leadership is sticky: a follower the detector names contests only
	// when the node holding its log (the leader it last granted) is gone
	// or unhealthy. A healthy leader that a peer merely missed for a few
	// heartbeats (a Reset takes 540 us of CPU) is not taken over, which
	// is what stops ping-pong under partial connectivity.
	holder, held := r.perms.Holder()
	if b := le.Uint64(r.region[hdrLeaderBeat:]); b != r.seenBeat {
		r.seenBeat, r.seenBeatAt = b, now
	}
	if held && holder != r.holderSeen {
		r.holderSeen, r.holderAt = holder, now
	}
	active := now-max(r.seenBeatAt, r.holderAt) <= 10*r.cfg.LeaderBeatNs
	incumbentOK := held && holder != r.self && active && r.det.Alive(holder) &&
		r.det.PeerHealth(holder) == HealthHealthy
	want := ok && ldr == r.self && able && !incumbentOK
	if r.role == roleLeader {
		// A leader stays while its writes reach a majority (leaderStep
		// gives up otherwise) and nobody took its log (below).
		want = able
		// One the hardware arbiter degraded hands over as soon as the
		// detector names a healthy live peer: stopping before that peer
		// asks for permission leaves no write of it in flight for a
		// grantor to refuse, which would cost the grantor a connection
		// Reset (540 µs on rxe) before its grant goes out.
		if r.degradedA.Load() && ok && ldr != r.self && r.det.Alive(ldr) && r.det.PeerHealth(ldr) == HealthHealthy {
			want = false
		}
	}
	if r.role != roleFollower {
		// Granting another node's request (which the permission manager
		// does whatever this node's role) hands it this log: a leader or
		// candidate that no longer holds its own log must stop at once.
		if h, hok := r.perms.Holder(); hok && h != r.self {
			r.stepDown()
			return 0
		}
	}
	switch r.role {
	case roleFollower:
		if !want {
			r.wantSince = 0
			return 0
		}
		if r.wantSince == 0 {
			r.wantSince = now
		}
		if now-r.wantSince < r.cfg.LeaderStableNs {
			return r.wantSince + r.cfg.LeaderStableNs
		}
		r.startElection(now, true)
		return r.electionStep(now)
	case roleCandidate:
		if !want {
			r.stepDown()
			return 0
		}
		return r.electionStep(now)
	default:
		if !want {
			r.stepDown()
			return 0
		}
		return r.leaderStep(now)
	}
}

func (r *Replica) resetPeers() {
	for i := range r.peers {
		p := &r.peers[i]
		r.dropBatch(p)
		p.gen++
		p.state = peerIdle
		p.since = r.now
		p.commitInflight, p.headerInflight = false, false
		p.hdrOK, p.prepOK, p.windowOK = false, false, false
		p.windowParts = 0
	}
	r.snapBusy = false
}

// flushStaleWrites resets every replication connection that still has
// writes of this replica in flight (to a peer that was cut off, they are
// retransmitted until the transport timeout). Asking for permission would
// re-open those peers' logs to this replica, and a write of an earlier
// term landing then could overwrite entries the peer has since accepted
// or committed under a newer leader: an accept below the promised
// proposal. Resetting the local end drops them for good.
func (r *Replica) flushStaleWrites() {
	for i := range r.peers {
		p := &r.peers[i]
		r.dropBatch(p) // never posted: nothing of it can land
		if p.writesOut == 0 {
			continue
		}
		if err := p.conn.Reset(p.conn.RemoteAccess()); err != nil {
			r.stats.OpErrors++
			continue
		}
		r.stats.StaleFlushes++
	}
}

func (r *Replica) startElection(now int64, fresh bool) {
	r.role = roleCandidate
	r.stats.Elections++
	r.flushStaleWrites()
	r.resetPeers()
	r.el.phase = phPermission
	r.el.epoch = r.perms.Request(now)
	r.lastRequestAt = now
	r.el.phaseAt = now
	if fresh {
		r.el.startAt = now
	}
}

// giveUp ends a leadership attempt that cannot reach a majority.
func (r *Replica) giveUp(now int64) {
	r.degradeUntil = now + r.degradeHold()
	r.stepDown()
	r.setHealth(HealthDegraded)
}

// electionStep drives a leader change: permission from a majority, read
// min_proposal, write a higher unique proposal, read the undecided slots
// from a majority and adopt the highest accepted value of each.
func (r *Replica) electionStep(now int64) (wake int64) {
	if r.el.phase == phPromise {
		// The local disk's time does not count against the election's
		// timeouts (a slow disk would otherwise never let it finish),
		// up to a bound of its own: a replica whose disk takes longer
		// gives up and advertises itself degraded, so another leads.
		d, err := r.js.st.Durable()
		if err != nil {
			r.storageFailed("sync", err)
			return 0
		}
		if d < r.el.promiseSeq {
			if now-r.el.phaseAt > promiseWaitElections*r.cfg.ElectionTimeoutNs {
				r.giveUp(now)
				return 0
			}
			return now + r.cfg.MaxIdleNs
		}
		r.el.startAt += now - r.el.phaseAt
		r.postPrepare(now)
	}
	if now-r.el.startAt > 3*r.stallNs() {
		r.giveUp(now)
		return 0
	}
	if now-r.el.phaseAt > r.stallNs() {
		r.startElection(now, false)
	}
	wake = r.el.phaseAt + r.stallNs() + 1
	switch r.el.phase {
	case phPermission:
		granted := 0
		for i := range r.peers {
			if r.perms.GrantedBy(r.peers[i].id, r.el.epoch) {
				granted++
			}
		}
		if granted+1 < r.q {
			return wake
		}
		for i := range r.peers {
			p := &r.peers[i]
			if r.perms.GrantedBy(p.id, r.el.epoch) {
				r.postHeaderRead(p)
			}
		}
		r.el.phase, r.el.phaseAt = phReadMin, now
		r.el.grantedAt = now
	case phReadMin:
		ok := 0
		maxSeen, _ := openWord(le.Uint64(r.region[hdrMinProposal:])) // damaged: the peers' promises decide
		for i := range r.peers {
			p := &r.peers[i]
			if p.hdrOK && !p.rejoining {
				ok++
				maxSeen = max(maxSeen, p.minProposal)
			} else if !p.hdrOK && !p.headerInflight && p.headerAt < r.el.phaseAt &&
				now-p.since >= r.retryNs() && r.perms.GrantedBy(p.id, r.el.epoch) {
				// Granted after the first majority, which may not be
				// able to vote (a replica rejoining without its log).
				// A failed read (peerFailed sets since) is retried
				// after retryNs, not at once.
				p.since = now
				r.postHeaderRead(p)
			}
		}
		if ok+1 < r.q {
			return wake
		}
		prop := r.nextProposal(maxSeen)
		r.el.proposal = prop
		le.PutUint64(r.region[hdrMinProposal:], sealWord(prop))
		if r.js != nil {
			// A proposal is used once: it reaches the journal before any
			// write carries it, so after a total failure this replica's
			// next proposal is higher even if no peer kept this one.
			seq, ok := r.journalPromise(prop)
			if !ok {
				return 0
			}
			r.el.promiseSeq = seq
			r.el.phase, r.el.phaseAt = phPromise, now
			return r.electionStep(now)
		}
		r.postPrepare(now)
	case phWriteMin:
		ok := 0
		for i := range r.peers {
			if r.promised(&r.peers[i]) {
				ok++
			}
		}
		if ok+1 < r.q {
			return wake
		}
		// From the first index not applied here, not the first not known
		// committed: a committed slot this replica never received whole
		// would otherwise stay a hole in the new leader's own log.
		r.el.start = r.applied + 1
		r.el.cursor = r.el.start
		for i := range r.peers {
			p := &r.peers[i]
			r.el.members[p.member] = r.promised(p)
			if r.el.members[p.member] {
				r.postWindow(p, r.el.cursor)
			}
		}
		r.el.phase, r.el.phaseAt = phRecover, now
		r.el.preparedAt = now
	case phRecover:
		ok := 0
		for i := range r.peers {
			p := &r.peers[i]
			if r.el.members[p.member] && p.windowOK {
				ok++
			}
		}
		if ok+1 < r.q {
			return wake
		}
		full, end, abort := r.adoptWindow()
		if r.fenced {
			return 0
		}
		if abort {
			r.startElection(now, false)
			return wake
		}
		if r.behind {
			r.stepDown()
			return 0
		}
		if !full {
			r.enterLeading(now, end)
			return r.leaderStep(now)
		}
		r.el.cursor = end
		for i := range r.peers {
			p := &r.peers[i]
			r.el.members[p.member] = r.el.members[p.member] && p.windowOK
			if r.el.members[p.member] {
				r.postWindow(p, r.el.cursor)
			}
		}
		r.el.phaseAt = now
	}
	return wake
}

// promiseWaitElections bounds, in election timeouts, how long a candidate
// waits for its own promise to be durable.
const promiseWaitElections = 10

// postPrepare writes the election's proposal into the min_proposal word
// of every peer that can vote.
func (r *Replica) postPrepare(now int64) {
	for i := range r.peers {
		p := &r.peers[i]
		if !p.hdrOK || p.rejoining {
			continue
		}
		st := r.lay.stage(p.member)
		le.PutUint64(r.region[st+stageMinProposal:], sealWord(r.el.proposal))
		r.post(p, rdma.WorkRequest{ID: makeWRID(wrMinProposal, p.member, p.gen, 0), Op: rdma.OpWrite,
			LocalOffset: st + stageMinProposal, RemoteOffset: hdrMinProposal, Length: 8})
	}
	r.el.phase, r.el.phaseAt = phWriteMin, now
}

// promised reports whether p's prepare counts: its min_proposal write
// completed and, in sync mode, p publishes that promise as durable in its
// journal (hdrPersistedUnder equal to this election's proposal; a header
// read before the write cannot show it, the proposal being above every
// promise read then). A promise that is not yet durable would be
// forgotten by a power loss, and the replica, restarted from its journal
// as a voter, could then accept and help commit an older proposal's
// value that this election's recovery did not see. Until then its header
// is read again.
func (r *Replica) promised(p *peer) bool {
	if !p.prepOK {
		return false
	}
	if r.js == nil || !r.js.sync {
		return true
	}
	if p.hdrOK && p.durUnder == r.el.proposal {
		return true
	}
	if !p.headerInflight {
		r.postHeaderRead(p)
	}
	return false
}

// awaitsDurable reports whether, in sync mode, this leader waits on p's
// persisted index: it then reads p's header at every Step instead of every
// HeaderPollNs.
func (r *Replica) awaitsDurable(p *peer) bool {
	return r.js != nil && r.js.sync && r.commit < r.next-1 && r.peerDurable(p) < p.acked
}

// nextProposal is the smallest proposal above seen that belongs to this
// replica: proposals are member index + 1 + k*n, unique per replica.
func (r *Replica) nextProposal(seen uint64) uint64 {
	n := uint64(r.n)
	p := seen/n*n + uint64(r.selfIdx) + 1
	for p <= seen {
		p += n
	}
	return p
}

func (r *Replica) postHeaderRead(p *peer) {
	p.headerInflight = true
	p.hdrOK = false
	r.post(p, rdma.WorkRequest{ID: makeWRID(wrHeaderRead, p.member, p.gen, 0), Op: rdma.OpRead,
		LocalOffset: r.lay.readHeader(p.member), RemoteOffset: 0, Length: headerBytes})
}

// windowSlots is how many slots one recovery round reads from each peer:
// ReadWindowSlots, fewer if they exceed RecoveryReadBytes, at least one.
func (r *Replica) windowSlots() uint64 {
	w := max(1, uint64(r.cfg.recoveryReadBytes())/r.lay.SlotStrideBytes)
	return min(w, uint64(r.cfg.ReadWindowSlots))
}

// postWindow reads windowSlots slots starting at index cursor from p, in
// two reads when the window wraps around the ring.
func (r *Replica) postWindow(p *peer, cursor uint64) {
	w := r.windowSlots()
	c := r.lay.LogSlots
	stride := r.lay.SlotStrideBytes
	pos := cursor % c
	first := min(w, c-pos)
	local := r.lay.readWindow(p.member)
	n := 1
	if first < w {
		n = 2
	}
	p.windowOK = false
	p.windowParts = n
	if !r.post(p, rdma.WorkRequest{ID: makeWRID(wrWindowRead, p.member, p.gen, 0), Op: rdma.OpRead,
		LocalOffset: local, RemoteOffset: r.lay.SlotOffset(cursor), Length: uint32(first * stride)}) {
		return
	}
	if n == 2 {
		r.post(p, rdma.WorkRequest{ID: makeWRID(wrWindowRead, p.member, p.gen, 1), Op: rdma.OpRead,
			LocalOffset: local + first*stride, RemoteOffset: r.lay.LogOffset, Length: uint32((w - first) * stride)})
	}
}

// adoptWindow decides, for each index of the window just read, the value
// with the highest accepted proposal among this replica and the peers that
// answered, and writes it into the local log under the new proposal. It
// stops at the first index that a majority provably never accepted (end).
// abort means the round must be redone: too few replicas can vote.
//
// A replica votes on an index only when its slot is complete or provably
// empty there. A damaged slot (a write cut short, a flipped word) may have
// overwritten an accepted value, so reading it as "not accepted" could
// lose a committed entry: such a replica abstains, and the others must
// still form a majority.
func (r *Replica) adoptWindow() (full bool, end uint64, abort bool) {
	w := r.windowSlots()
	stride := r.lay.SlotStrideBytes
	maxP := r.cfg.MaxPayloadBytes
	for k := uint64(0); k < w; k++ {
		i := r.el.cursor + k
		var best []byte
		var bestProp uint64
		have, fromOwn := false, false
		voters := 0
		own, st := decodeSlot(r.slotBuf(i), i, maxP)
		switch st {
		case slotOK:
			best, bestProp, have, fromOwn = own.payload, own.proposal, true, true
			voters++
		case slotEmpty:
			voters++
		case slotReplaced:
			r.behind = true // a lap behind: see the peers' case below
			return false, i, false
		default:
			// Corrupt or damaged (a rewrite of another value cut short
			// leaves a payload that fails its checksum): it cannot vote
			// on this index, and adopts what the others hold.
			r.stats.DamagedSlots++
		}
		for j := range r.peers {
			p := &r.peers[j]
			if !r.el.members[p.member] || !p.windowOK {
				continue
			}
			off := r.lay.readWindow(p.member) + k*stride
			v, pst := decodeSlot(r.region[off:off+stride], i, maxP)
			switch pst {
			case slotOK:
				voters++
				if !have || v.proposal > bestProp {
					best, bestProp, have, fromOwn = v.payload, v.proposal, true, false
				}
			case slotEmpty:
				voters++
			case slotReplaced:
				// A majority member reused this position: the index was
				// decided and reclaimed while this replica lagged by more
				// than the log. It must be restored before it can lead.
				r.behind = true
				return false, i, false
			default:
				// This peer's copy is corrupt or damaged: it cannot vote.
				// Any set that still holds a majority gives a correct
				// choice (Paxos needs a quorum, not a particular one), so
				// the peer leaves the round.
				if pst == slotCorrupt {
					r.stats.CorruptSlots++
				} else {
					r.stats.DamagedSlots++
				}
				r.el.members[p.member] = false
			}
		}
		if voters < r.q {
			// Too few votes on this index: start over (and so wait for
			// a majority that can vote, or for a leader to repair it).
			return false, i, true
		}
		if !have {
			return false, i, false
		}
		buf := r.slotBuf(i)
		if fromOwn {
			sealSlot(buf, i, r.el.proposal, r.commit, len(best))
		} else {
			encodeSlot(buf, i, r.el.proposal, r.commit, best)
		}
	}
	return true, r.el.cursor + w, false
}

func (r *Replica) enterLeading(now int64, end uint64) {
	r.role = roleLeader
	r.proposal = r.el.proposal
	r.next = end
	r.commitAt = now
	r.noQuorumSince = 0
	r.lastSlotAt = now
	r.probeIndex = 0
	r.stats.LeaderTerms++
	// What a recovery peer had applied when its header was read was
	// committed before the recovery read its window, so the recovery
	// adopted it: it is committed in this log too. Knowing so lets the
	// catch-ups start where the peers are (startCatchup starts at most
	// at the commit index + 1).
	for i := range r.peers {
		p := &r.peers[i]
		if r.el.members[p.member] && p.windowOK {
			r.commit = max(r.commit, min(p.applied, end-1))
		}
	}
	for i := range r.peers {
		p := &r.peers[i]
		if r.el.members[p.member] && p.windowOK {
			r.startCatchup(p, min(p.applied+1, r.el.start))
		} else {
			p.gen++
			p.state = peerIdle
			p.since = now
		}
	}
	if r.role != roleLeader {
		return // fenced itself on a damaged slot while catching a peer up
	}
	// Stop resending the request: a late grant of this epoch, arriving
	// after a peer granted someone newer, would hand this leader write
	// access without a new prepare.
	r.perms.Abandon()
	r.isLeader.Store(true)
	if r.cfg.OnLeaderChange != nil {
		r.cfg.OnLeaderChange(LeaderChange{Leader: true, Proposal: r.proposal, FirstIndex: Index(end), AtNs: now,
			PermissionNs: r.el.grantedAt - r.el.startAt,
			PrepareNs:    r.el.preparedAt - r.el.grantedAt,
			RecoveryNs:   now - r.el.preparedAt})
	}
}

func (r *Replica) stepDown() {
	was := r.role == roleLeader
	if r.role != roleFollower {
		r.perms.Abandon()
	}
	r.role = roleFollower
	r.isLeader.Store(false)
	r.wantSince = 0
	r.resetPeers()
	for r.wLen > 0 {
		w := r.waiters[r.wHead]
		r.wHead = (r.wHead + 1) % len(r.waiters)
		r.wLen--
		r.deliver(w.cell, w.index, ErrLeadershipLost)
	}
	r.scanPos = r.applied + 1
	if was && r.cfg.OnLeaderChange != nil {
		r.cfg.OnLeaderChange(LeaderChange{Leader: false, AtNs: r.now})
	}
}

// onLeaderHeader reacts to a follower's header read while leading.
func (r *Replica) onLeaderHeader(p *peer) {
	if !p.hdrOK && p.state == peerReplicating {
		// Its promise word is damaged: put this leader's back (a word
		// damaged while it was replicating; a catch-up writes it first).
		r.postMinProposal(p)
	}
	if p.minProposal > r.proposal {
		// A candidate with a higher proposal prepared on this follower:
		// this leader is deposed, whatever its detector still says.
		r.stats.Deposed++
		r.stepDown()
		return
	}
	switch p.state {
	case peerHeaderWait:
		r.startCatchup(p, p.applied+1)
	case peerSnapshotSent:
		if p.applied >= p.snapIndex {
			r.startCatchup(p, p.applied+1)
		}
	case peerReplicating:
		// The slot it needs next was reclaimed while it looked dead: it
		// cannot catch up from the log any more.
		if r.next > r.lay.LogSlots && p.applied+1 < r.next-r.lay.LogSlots {
			r.peerFailed(p)
			p.state = peerNeedSnapshot
			return
		}
		// Its applied position has not moved for a long time although
		// it has been told of later commits: something it needed was
		// lost in transport. Catch it up again from what it applied.
		if p.applied < p.hintSent && r.now-p.appliedAt > r.cfg.ElectionTimeoutNs && r.now-p.since > r.cfg.ElectionTimeoutNs {
			r.stats.Recatchups++
			r.peerFailed(p)
		}
	}
}

// startCatchup begins writing the follower's missing range [from, next),
// paced by pumpCatchup so the send queue never overflows; when the range
// is in, the follower turns replicating and every later slot follows on the
// same connection, so it never has a gap.
//
// Two rules keep a deposed leader from counting what is not its own:
//   - acked starts at most at this leader's commit index. What a follower
//     applied beyond it may be a newer leader's entries; an
//     acknowledgement above the commit index comes only from a completed
//     write of this leader's own slot.
//   - the first write is this leader's proposal into the follower's
//     min_proposal word. Writes on one connection land in order, so a
//     follower never holds a slot under a proposal above its
//     min_proposal, and a leader that reads a higher one in a header
//     knows it was deposed (onLeaderHeader) before it writes anything.
func (r *Replica) startCatchup(p *peer, from uint64) {
	to := r.next - 1
	from = min(from, r.commit+1, to+1)
	if from <= to {
		if _, st := decodeSlot(r.slotBuf(from), from, r.cfg.MaxPayloadBytes); st != slotOK || to-from >= r.lay.LogSlots {
			p.state = peerNeedSnapshot
			p.since = r.now
			return
		}
		r.stats.CatchUps++
	}
	if !r.postMinProposal(p) {
		return
	}
	p.state = peerCatchingUp
	p.since = r.now
	p.catchNext = from
	p.acked = from - 1
	p.hintSent = 0
	p.headerAt = r.now
	r.pumpCatchup(p)
}

// postMinProposal writes this leader's proposal into p's min_proposal word.
func (r *Replica) postMinProposal(p *peer) bool {
	st := r.lay.stage(p.member)
	le.PutUint64(r.region[st+stageMinProposal:], sealWord(r.proposal))
	return r.post(p, rdma.WorkRequest{ID: makeWRID(wrMinProposal, p.member, p.gen, 0), Op: rdma.OpWrite,
		LocalOffset: st + stageMinProposal, RemoteOffset: hdrMinProposal, Length: 8})
}

// pumpCatchup posts the next slots of a follower's missing range, in
// ascending order, as far as the in-flight budget allows, and turns the
// follower replicating once the range is in.
//
// Each slot is written as its encoded bytes (header, payload, trailer),
// like the fast path, not as its whole stride: a follower behind by many
// small entries in full-size slots would otherwise need the link's whole
// bandwidth, or more, to catch up while new entries keep coming. And the
// bytes queued on that link delay the heartbeat reads the follower sends
// this leader (their responses share it): with more queued than a detector
// sampling period at link speed, a follower being caught up declares a
// healthy leader dead and takes over. So at most RecoveryReadBytes (at
// least one slot) of catch-up is in flight, like a recovery read.
func (r *Replica) pumpCatchup(p *peer) {
	// Room kept for control writes (commit word, beat, caught-up mark).
	const reserve = 8
	limit := min(r.cfg.MaxOutstandingWrites-reserve,
		max(r.writesFor(r.lay.SlotStrideBytes), r.writesFor(uint64(r.cfg.recoveryReadBytes()))))
	for p.state == peerCatchingUp && p.catchNext <= r.next-1 {
		i := p.catchNext
		// Never copy a damaged slot to a follower: its own checksum check
		// would fence it. Below the applied index a missing slot is a
		// known hole (a snapshot was restored over it): the follower gets
		// a snapshot. Above it every slot is this leader's own writing,
		// so damage there is its memory's, and it fences itself.
		v, st := decodeSlot(r.slotBuf(i), i, r.cfg.MaxPayloadBytes)
		if st != slotOK {
			if i <= r.applied {
				r.peerFailed(p)
				p.state = peerNeedSnapshot
				return
			}
			r.reportCorrupt(i)
			return
		}
		n := encodedSlotBytes(len(v.payload))
		if p.writesOut+r.writesFor(n) > limit {
			return // wait for completions
		}
		if !r.postSlots(p, i, i, uint32(n), false) {
			return
		}
		p.catchNext = i + 1
	}
	if p.state != peerCatchingUp {
		return
	}
	to := r.next - 1
	st := r.lay.stage(p.member)
	// The mark carries this leader's proposal: a follower that journals
	// its log knows from it that every rewrite of this term before the
	// range's end has landed.
	le.PutUint64(r.region[st+stageCaughtUp:], sealWord(r.proposal))
	if !r.post(p, rdma.WorkRequest{ID: makeWRID(wrCaughtUp, p.member, p.gen, 0), Op: rdma.OpWrite,
		LocalOffset: st + stageCaughtUp, RemoteOffset: hdrCaughtUp, Length: 8}) {
		return
	}
	p.state = peerReplicating
	p.since = r.now
	p.sent = to
}

// granted reports whether p lets this leader write: it acknowledged the
// current request and has not refused a write since (a restarted peer
// forgets what it granted).
func (r *Replica) granted(p *peer) bool {
	return r.perms.GrantedBy(p.id, r.el.epoch) && p.revokedEpoch != r.el.epoch
}

// leaderStep is the leader's work: keep followers caught up, write new
// slots, commit on a majority, tell idle followers the commit index, and
// read followers' headers for log reclamation.
func (r *Replica) leaderStep(now int64) (wake int64) {
	if r.role != roleLeader {
		return 0
	}
	live := 1
	needGrant := false
	for i := range r.peers {
		p := &r.peers[i]
		switch p.state {
		case peerIdle:
			if now-p.since < r.retryNs() {
				wake = minWake(wake, p.since+r.retryNs())
				continue
			}
			if !r.granted(p) {
				needGrant = needGrant || r.det.Alive(p.id)
				continue
			}
			if p.conn.State() != rdma.ConnReady {
				p.since = now
				continue
			}
			p.state = peerHeaderWait
			p.since = now
			r.postHeaderRead(p)
		case peerHeaderWait:
			if now-p.since > r.cfg.ElectionTimeoutNs {
				r.peerFailed(p)
			}
		case peerCatchingUp:
			r.pumpCatchup(p)
			if !p.headerInflight && now-p.headerAt >= r.cfg.HeaderPollNs {
				r.postHeaderRead(p)
			}
		case peerReplicating:
			// A follower counts toward the leader's majority only while
			// it answers: a write to a cut-off peer neither completes nor
			// fails until the transport timeout (0.5 s on rxe).
			if now-p.headerAt <= r.stallNs() {
				live++
			}
			if !p.headerInflight && (now-p.headerAt >= r.cfg.HeaderPollNs || r.awaitsDurable(p)) {
				r.postHeaderRead(p)
			}
		case peerNeedSnapshot:
			r.startSnapshot(p)
		case peerSnapshotSent:
			if now-p.since > r.cfg.ElectionTimeoutNs {
				p.state = peerNeedSnapshot
			} else if !p.headerInflight && now-p.headerAt >= r.cfg.HeaderPollNs {
				r.postHeaderRead(p)
			}
		}
	}
	if r.role != roleLeader {
		return 0 // fenced while catching a peer up
	}
	if needGrant && now-r.lastRequestAt > 4*r.cfg.ElectionTimeoutNs {
		// A live peer (restarted, or reconnected) does not let this leader
		// write. Asking it again means taking the permission back from
		// whoever holds it now, which is only safe with a fresh prepare:
		// run a whole leader change.
		r.stepDown()
		r.startElection(now, true)
		return r.electionStep(now)
	}
	if live < r.q {
		if r.noQuorumSince == 0 {
			r.noQuorumSince = now
		} else if now-r.noQuorumSince > r.stallNs() {
			r.giveUp(now)
			return 0
		}
		wake = minWake(wake, r.noQuorumSince+r.stallNs()+1)
	} else {
		r.noQuorumSince = 0
	}
	r.proposeQueued()
	if w := r.probeStep(now); w != 0 {
		wake = minWake(wake, w)
	}
	r.advanceCommit()
	r.applyCommitted()
	for i := range r.peers {
		p := &r.peers[i]
		if p.state != peerReplicating || r.commit <= p.hintSent || p.commitInflight || p.commitPending > 0 {
			continue
		}
		if due := r.commitAt + r.cfg.CommitPropagationNs; now < due {
			wake = minWake(wake, due)
			continue
		}
		st := r.lay.stage(p.member)
		le.PutUint64(r.region[st+stageCommit:], sealWord(r.commit))
		if r.post(p, rdma.WorkRequest{ID: makeWRID(wrCommitWord, p.member, p.gen, 0), Op: rdma.OpWrite,
			LocalOffset: st + stageCommit, RemoteOffset: hdrCommit, Length: 8}) {
			p.hintSent = r.commit
			p.commitInflight = true
			p.commitPending++
			r.stats.CommitWords++
		}
	}
	// Beat: tells followers this leader is alive and leading, so they
	// keep deferring to it (sticky leadership).
	for i := range r.peers {
		p := &r.peers[i]
		if p.state != peerReplicating || p.beatPending > 0 {
			continue
		}
		if due := p.beatAt + r.cfg.LeaderBeatNs; now < due {
			wake = minWake(wake, due)
			continue
		}
		r.beat++
		st := r.lay.stage(p.member)
		le.PutUint64(r.region[st+stageBeat:], r.beat)
		if r.post(p, rdma.WorkRequest{ID: makeWRID(wrBeat, p.member, p.gen, 0), Op: rdma.OpWrite,
			LocalOffset: st + stageBeat, RemoteOffset: hdrLeaderBeat, Length: 8}) {
			p.beatPending++
			p.beatAt = now
		}
	}
	return wake
}

func minWake(a, b int64) int64 {
	if a == 0 || b < a {
		return b
	}
	return a
}

// reclaimable reports whether index may be written: the ring position's
// previous occupant (index - LogSlots) must be applied here and on every
// live follower. Followers the detector thinks dead, or whose header has
// not been read recently, do not hold the log back; they get a snapshot.
func (r *Replica) reclaimable(index uint64) bool {
	if index <= r.lay.LogSlots {
		return true
	}
	old := index - r.lay.LogSlots
	if r.applied < old {
		return false
	}
	// A majority, counting this leader, must have applied the old
	// occupant before its slot is reused: otherwise the only copies of a
	// committed entry (in a log or in a state machine) could be on a
	// minority, and a leader crash with its followers off the log would
	// lose it.
	have := 1
	for i := range r.peers {
		if r.peers[i].applied >= old {
			have++
		}
	}
	if have < r.q {
		for i := range r.peers {
			p := &r.peers[i]
			if p.applied < old && p.state == peerReplicating && !p.headerInflight {
				r.postHeaderRead(p) // learn its progress sooner
			}
		}
		return false
	}
	for i := range r.peers {
		p := &r.peers[i]
		if p.sourcePending(old) {
			return false // a write still reads the old occupant
		}
		if p.state == peerCatchingUp && p.catchNext <= old {
			return false // its catch-up has yet to send the old occupant
		}
		// Only a live follower that still needs exactly the evicted slot
		// holds the ring back; one that needs an older slot is already
		// off the log and gets a snapshot.
		if p.applied+1 != old || !r.det.Alive(p.id) || r.now-p.headerAt > 10*r.cfg.HeaderPollNs {
			continue
		}
		if p.state == peerReplicating && !p.headerInflight {
			r.postHeaderRead(p) // learn its progress sooner
		}
		return false
	}
	return true
}

// proposeQueued drains queued proposals into new slots (a batch per slot)
// and writes each slot to every replicating follower: the fast path.
func (r *Replica) proposeQueued() {
	ring := r.ring
	maxP := r.cfg.MaxPayloadBytes
	for r.next-1-r.commit < uint64(r.cfg.MaxInflightSlots) {
		ring.mu.Lock()
		if ring.qLen == 0 {
			ring.mu.Unlock()
			return
		}
		if !r.reclaimable(r.next) {
			ring.mu.Unlock()
			r.stats.ReclaimStalls++
			return
		}
		i := r.next
		buf := r.slotBuf(i)
		pay := buf[slotHeaderBytes : slotHeaderBytes+maxP]
		n := 0
		for {
			id, ok := ring.peek()
			if !ok {
				break
			}
			c := &ring.cells[id]
			if n+batchFrameBytes+c.n > maxP {
				break
			}
			le.PutUint32(pay[n:], uint32(c.n))
			copy(pay[n+batchFrameBytes:], c.buf[:c.n])
			n += batchFrameBytes + c.n
			ring.pop()
			r.waiters[(r.wHead+r.wLen)%len(r.waiters)] = waiter{index: i, cell: id}
			r.wLen++
		}
		ring.mu.Unlock()
		r.writeSlot(i, n)
	}
}

// writeSlot seals the new slot i (n payload bytes already in place) and
// writes it to every replicating follower.
func (r *Replica) writeSlot(i uint64, n int) {
	total := sealSlot(r.slotBuf(i), i, r.proposal, r.commit, n)
	r.next++
	r.lastSlotAt = r.now
	for j := range r.peers {
		p := &r.peers[j]
		if p.state != peerReplicating {
			continue
		}
		if r.postSlots(p, i, i, uint32(total), true) {
			p.sent = i
			p.hintSent = max(p.hintSent, r.commit)
		}
	}
}

// advanceCommit sets the commit index to the highest index that a
// majority (counting this leader) has completed.
func (r *Replica) advanceCommit() {
	r.acks[0] = r.next - 1
	sync := r.js != nil && r.js.sync
	if sync {
		// Sync mode: a replica counts only for what it holds durably.
		r.acks[0] = min(r.acks[0], r.ownDurable())
	}
	k := 1
	for i := range r.peers {
		p := &r.peers[i]
		if p.state == peerReplicating {
			r.acks[k] = p.acked
			if sync {
				r.acks[k] = min(p.acked, r.peerDurable(p))
			}
		} else {
			r.acks[k] = 0
		}
		k++
	}
	if c := quorumIndex(r.acks[:k], r.q, r.scratch); c > r.commit {
		r.commit = c
		r.commitAt = r.now
		if r.probeIndex != 0 && c >= r.probeIndex {
			r.observeProbe(r.now - r.probeAt)
			r.probeIndex = 0
		}
	}
}

// startSnapshot pushes a state-machine snapshot to a follower that fell off
// the log: bytes first, then the header whose canary makes it visible.
func (r *Replica) startSnapshot(p *peer) {
	if r.snapBusy || r.cfg.SnapshotMaxBytes == 0 || p.conn.State() != rdma.ConnReady ||
		r.now-p.since < r.retryNs() {
		return
	}
	data, err := r.sm.Snapshot()
	if err != nil || uint64(len(data)) > r.lay.SnapshotMaxBytes {
		// The follower stays off the log; counted so an operator sees it
		// (raise SnapshotMaxBytes or LogSlots).
		r.stats.SnapshotFailures++
		p.since = r.now
		return
	}
	idx := r.applied
	area := r.lay.SnapshotOffset
	h := r.region[area : area+snapHeaderBytes]
	copy(r.region[area+snapHeaderBytes:], data)
	le.PutUint64(h[snapIndexOff:], idx)
	le.PutUint64(h[snapLenOff:], uint64(len(data)))
	le.PutUint32(h[snapCRCOff:], crc32.Checksum(data, castagnoli))
	le.PutUint32(h[snapCanaryOff:], canaryFor(idx)^snapshotCanaryMix)
	chunk := uint64(r.cfg.MaxBulkWriteBytes)
	for off := uint64(0); off < uint64(len(data)); off += chunk {
		n := min(chunk, uint64(len(data))-off)
		o := area + snapHeaderBytes + off
		if !r.post(p, rdma.WorkRequest{ID: makeWRID(wrSnapData, p.member, p.gen, 0), Op: rdma.OpWrite,
			LocalOffset: o, RemoteOffset: o, Length: uint32(n)}) {
			return
		}
	}
	if !r.post(p, rdma.WorkRequest{ID: makeWRID(wrSnapHeader, p.member, p.gen, 0), Op: rdma.OpWrite,
		LocalOffset: area, RemoteOffset: area, Length: snapHeaderBytes}) {
		return
	}
	r.snapBusy = true
	p.snapIndex = idx
	p.state = peerSnapshotPosting
	p.since = r.now
	r.stats.SnapshotsSent++
}
