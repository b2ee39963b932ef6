package consensus

import (
	"github.com/rdmaconsensus/mu/rdma"
)

// stepDown leaves the leader or candidate role: the permission request is
// abandoned and every waiting proposal fails with ErrLeadershipLost.
// why is reported to OnLeaderChange when a leader steps down.
func (r *Replica) stepDown(why StepDownReason) {
	was := r.role == roleLeader
	if r.role != roleFollower {
		r.perms.Abandon()
	}
	r.role = roleFollower
	r.isLeader.Store(false)
	r.dropLease()
	r.wantSince = 0
	r.resetPeers()
	r.failReads(r.notLeader())
	r.takingOver = false
	if was {
		r.stepDownTransfer()
	}
	r.finishConf(ErrLeadershipLost)
	for r.wLen > 0 {
		w := r.waiters[r.wHead]
		r.wHead = (r.wHead + 1) % len(r.waiters)
		r.wLen--
		r.deliver(w.cell, w.index, ErrLeadershipLost)
	}
	r.scanPos = r.applied + 1
	if was && r.cfg.OnLeaderChange != nil {
		r.cfg.OnLeaderChange(LeaderChange{Leader: false, AtNs: r.now, Reason: why})
	}
}

// leaderStep is the leader's work: keep followers caught up, write new
// slots, commit on a majority, tell idle followers the commit index, and
// read followers' headers for log reclamation.
func (r *Replica) leaderStep(now int64) (wake int64) {
	if r.role != roleLeader {
		return 0
	}
	live := r.selfBit()
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
			// A descheduled follower's late header read is not a failed
			// peer: wait as long as the detector would.
			if now-p.since > r.stallNs() {
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
				live |= p.bit()
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
		r.stepDown(StepDownRegrant)
		r.startElection(now, true)
		r.el.cause = TakeoverRegrant
		return r.electionStep(now)
	}
	if !r.quorate(live) {
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
	if hold, w := r.transferStep(now); hold {
		// Handing over: nothing new is written, so the target can be
		// caught up with everything this leader ever wrote.
		wake = minWake(wake, w)
	} else {
		r.proposeQueued()
		r.confStep(now)
		if w := r.probeStep(now); w != 0 {
			wake = minWake(wake, w)
		}
	}
	r.advanceCommit()
	r.applyCommitted()
	if r.xfer.active && r.xfer.sentAt != 0 {
		// Handed over: a write the target's grantors would refuse once
		// they switch to it costs each a connection Reset (540 µs on
		// rxe) before its grant goes out. Stay quiet until it asks.
		r.serveReads(now)
		return wake
	}
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
	// keep deferring to it (sticky leadership). A follower being caught
	// up gets beats too: a catch-up on a slow host outlasts the ten beats
	// after which a silent holder is contested.
	for i := range r.peers {
		p := &r.peers[i]
		if p.state == peerIdle || p.beatPending > 0 {
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
	r.serveReads(now)
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
	have := r.selfBit()
	for i := range r.peers {
		if r.peers[i].applied >= old {
			have |= r.peers[i].bit()
		}
	}
	if !r.quorate(have) {
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
	// By member position: learners' entries are ignored by quorumIndex.
	own := r.next - 1
	sync := r.js != nil && r.js.sync
	if sync {
		// Sync mode: a replica counts only for what it holds durably.
		own = min(own, r.ownDurable())
	}
	r.acks[r.selfIdx] = own
	for i := range r.peers {
		p := &r.peers[i]
		r.acks[p.member] = 0
		if p.state == peerReplicating {
			r.acks[p.member] = p.acked
			if sync {
				r.acks[p.member] = min(p.acked, r.peerDurable(p))
			}
		}
	}
	if c := r.quorumIndex(r.acks); c > r.commit {
		r.commit = c
		r.commitAt = r.now
		if r.probeIndex != 0 && c >= r.probeIndex {
			r.observeProbe(r.now - r.probeAt)
			r.probeIndex = 0
		}
	}
}
