package consensus

import "github.com/rdmaconsensus/mu/rdma"

// election is the progress of a leader change.
type election struct {
	phase    uint8
	cause    TakeoverReason // why this change started (reported when won)
	epoch    uint64
	phaseAt  int64
	startAt  int64
	proposal uint64
	start    uint64 // S: first index recovered
	end      uint64 // first index past the recovered log (phLeaseWait)
	cursor   uint64 // first index of the window being read
	members  []bool // peers used for this recovery round (by member)
	// tails: the rest of the window's long slots was asked for (postTails).
	tails []bool
	// early: a window at start was posted with the header read, in the
	// peer's generation winGen (by member).
	early  []bool
	winGen []uint8
	// wide: a recovery round of this election lacked votes on an index
	// (a damaged copy abstained, its own among them): the next rounds
	// wait a while for every granted voter, not just the first majority
	wide bool

	promiseSeq uint64 // journal record of the proposal (phPromise)

	// Phase boundaries of the current attempt, for LeaderChange.
	grantedAt, preparedAt int64
}

const (
	phPermission uint8 = iota
	phReadMin
	phWriteMin
	phRecover
	phPromise // the candidate's own promise is being made durable
	// phLeaseWait: recovered, waiting out an earlier leader's read lease
	// (Config.ReadLeaseNs after the prepare) before writing as leader
	phLeaseWait
)

// startElection begins a leader change: ask a majority for write
// permission, then prepare and recover (electionStep).
func (r *Replica) startElection(now int64, fresh bool) {
	r.role = roleCandidate
	r.stats.Elections++
	r.flushStaleWrites()
	r.resetPeers()
	r.el.phase = phPermission
	r.el.epoch = r.perms.Request(now)
	if n := len(r.el.members); len(r.el.tails) != n {
		r.el.tails, r.el.early, r.el.winGen = make([]bool, n), make([]bool, n), make([]uint8, n)
	}
	clear(r.el.early)
	r.lastRequestAt = now
	r.el.phaseAt = now
	if fresh {
		r.el.startAt = now
		r.el.wide = false
	}
}

// giveUp ends a leadership attempt that cannot reach a majority.
func (r *Replica) giveUp(now int64) {
	r.degradeUntil = now + r.degradeHold()
	r.stepDown(StepDownNoQuorum)
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
		granted, gset := 0, r.selfBit()
		for i := range r.peers {
			if r.perms.GrantedBy(r.peers[i].id, r.el.epoch) {
				granted++
				gset |= r.peers[i].bit()
			}
		}
		if !r.quorate(gset) {
			return wake
		}
		if r.wideWait(now, granted, r.alivePeers()) {
			return min(wake, r.el.phaseAt+r.wideWaitNs())
		}
		// The first window is read with the header, not after the
		// promise: a granted peer's log changes only by this candidate's
		// writes until it grants another, after which the promise's write
		// fails. So a window read before a promise that lands (same
		// connection, same generation) holds what a read after it would
		// (only such windows are used, see phWriteMin), and the prepare's
		// two round trips overlap the read.
		r.el.start = r.applied + 1
		r.el.cursor = r.el.start
		for i := range r.peers {
			p := &r.peers[i]
			if r.perms.GrantedBy(p.id, r.el.epoch) {
				r.postHeaderRead(p)
				g := p.gen
				r.postWindow(p, r.el.start)
				r.el.early[p.member], r.el.winGen[p.member] = p.gen == g, g
			}
		}
		r.el.phase, r.el.phaseAt = phReadMin, now
		r.el.grantedAt = now
	case phReadMin:
		ok, okSet := 0, r.selfBit()
		maxSeen, _ := openWord(le.Uint64(r.region[hdrMinProposal:])) // damaged: the peers' promises decide
		for i := range r.peers {
			p := &r.peers[i]
			if p.hdrOK && !p.rejoining {
				ok++
				okSet |= p.bit()
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
		if !r.quorate(okSet) || r.restoredHold(ok) {
			return wake
		}
		if r.wideWait(now, ok, r.grantedPeers()) {
			return min(wake, r.el.phaseAt+r.wideWaitNs())
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
		ok, okSet := 0, r.selfBit()
		for i := range r.peers {
			if r.promised(&r.peers[i]) {
				ok++
				okSet |= r.peers[i].bit()
			}
		}
		if !r.quorate(okSet) || r.restoredHold(ok) {
			return wake
		}
		voters := 0
		for i := range r.peers {
			if p := &r.peers[i]; p.hdrOK && !p.rejoining {
				voters++
			}
		}
		if r.wideWait(now, ok, voters) {
			return min(wake, r.el.phaseAt+r.wideWaitNs())
		}
		// From the first index not applied here when the grants came
		// (el.start), not the first not known committed: a committed slot
		// this replica never received whole would otherwise stay a hole
		// in the new leader's own log. An index applied since is decided,
		// and recovering it again adopts the same value.
		for i := range r.peers {
			p := &r.peers[i]
			r.el.members[p.member] = r.promised(p)
			if r.el.members[p.member] && !(r.el.early[p.member] && r.el.winGen[p.member] == p.gen) {
				// Its first window was not read in the generation its
				// promise landed in: read it now.
				r.el.early[p.member] = false
				r.postWindow(p, r.el.cursor)
			}
		}
		r.el.phase, r.el.phaseAt = phRecover, now
		r.el.preparedAt = now
		return r.electionStep(now)
	case phRecover:
		ok, okSet := 0, r.selfBit()
		for i := range r.peers {
			p := &r.peers[i]
			if r.el.members[p.member] && p.windowOK && !r.postTails(p) {
				ok++
				okSet |= p.bit()
			}
		}
		if !r.quorate(okSet) || r.restoredHold(ok) {
			return wake
		}
		in := 0
		for i := range r.peers {
			if r.el.members[r.peers[i].member] {
				in++
			}
		}
		if r.wideWait(now, ok, in) {
			return min(wake, r.el.phaseAt+r.wideWaitNs())
		}
		full, end, abort := r.adoptWindow()
		if r.fenced {
			return 0
		}
		if abort {
			r.el.wide = true
			r.startElection(now, false)
			return wake
		}
		if r.behind {
			r.stepDown(StepDownUnable)
			return 0
		}
		if !full {
			if until := r.el.preparedAt + r.cfg.ReadLeaseNs; now < until {
				r.el.end = end
				r.el.phase, r.el.phaseAt = phLeaseWait, now
				return until
			}
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
	case phLeaseWait:
		// An earlier leader may answer reads under its lease until then:
		// nothing this candidate writes may commit before (docs/reads.md).
		if until := r.el.preparedAt + r.cfg.ReadLeaseNs; now < until {
			return until
		}
		r.enterLeading(now, r.el.end)
		return r.leaderStep(now)
	}
	return wake
}

// wideWait reports whether a phase that has a majority should wait a
// little longer for the rest (have of want peers): only after a recovery
// round of this election lacked votes (el.wide), for at most wideWaitNs
// from the phase's start. Recovering from more than a majority is as
// safe as from a majority, and lets a damaged copy abstain.
func (r *Replica) wideWait(now int64, have, want int) bool {
	return r.el.wide && have < want && now-r.el.phaseAt < r.wideWaitNs()
}

// wideWaitNs is how long a wide phase waits for the rest: a window read
// over a slow link takes a while, and this happens only after an abort.
func (r *Replica) wideWaitNs() int64 { return r.cfg.ElectionTimeoutNs / 2 }

func (r *Replica) grantedPeers() int {
	n := 0
	for i := range r.peers {
		if r.perms.GrantedBy(r.peers[i].id, r.el.epoch) {
			n++
		}
	}
	return n
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
