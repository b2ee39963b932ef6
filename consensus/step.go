package consensus

import "github.com/rdmaconsensus/mu/rdma"

// Step advances the replica to time now (fabric clock, ns): it dispatches
// completions, steps the detector and permission manager, learns the
// commit index, applies, and does the work of its role. It returns the
// absolute time it next wants to run; call it sooner when a completion or
// a peer's write may have arrived. After Close it does nothing; while Run
// drives the replica it waits for Run to return.
func (r *Replica) Step(now int64) (nextWakeNs int64) {
	r.stepMu.Lock()
	defer r.stepMu.Unlock()
	if r.closing.Load() {
		return now + r.cfg.MaxIdleNs
	}
	return r.step(now)
}

// step is Step under stepMu.
func (r *Replica) step(now int64) (nextWakeNs int64) {
	r.now = now
	r.nowA.Store(now)
	if r.fenceReq.Load() {
		r.fence()
	}
	// Before anything is posted: confirmations of a read must be issued
	// after it arrived.
	r.takeReads(now)
	r.takeTransfer(now)
	wake := now + r.cfg.MaxIdleNs
	// The detector and the permission manager run first: they may Reset a
	// connection, which flushes what was outstanding on it, and those
	// flushes must be seen before this Step posts anything new there
	// (a write landing after a lost one would leave a gap).
	wake = min(wake, r.det.Step(now))
	wake = min(wake, r.perms.Step(now))
	for {
		n := r.f.Poll(r.comps)
		for i := 0; i < n; i++ {
			r.dispatch(r.comps[i])
		}
		if n < len(r.comps) {
			break
		}
	}
	// The leader hint for NotLeaderError: the node this replica granted
	// its log to, while it is alive; else the detector's choice.
	if h, ok := r.perms.Holder(); ok && h != r.self && r.det.Alive(h) {
		r.leaderA.Store(uint32(h) + 1)
	} else if l, ok := r.det.Leader(); ok {
		r.leaderA.Store(uint32(l) + 1)
	} else {
		r.leaderA.Store(0)
	}
	r.publishHeader()
	if !r.fenced {
		r.checkSnapshot()
		if r.role != roleLeader {
			r.learnCommit()
		}
		if w := r.applyCommitted(); w != 0 {
			wake = min(wake, w)
		}
	}
	if w := r.stepRole(now); w != 0 {
		wake = min(wake, w)
	}
	r.journalStep()
	for i := range r.peers {
		r.flushPeer(&r.peers[i])
	}
	if r.role != roleLeader {
		r.rejectQueued()
	}
	r.commitA.Store(r.commit)
	r.appliedA.Store(r.applied)
	r.publishStats()
	if wake <= now {
		wake = now + 1
	}
	return wake
}

func (r *Replica) dispatch(c rdma.Completion) {
	switch rdma.OwnerOf(c.ID) {
	case rdma.OwnerPullscore:
		r.det.OnCompletion(c)
		return
	case rdma.OwnerPermissions:
		r.perms.OnCompletion(c)
		return
	case rdma.OwnerConsensus:
	default:
		return
	}
	kind, m, gen, seq := splitWRID(c.ID)
	if m >= r.n || r.byMem[m] < 0 {
		return
	}
	p := &r.peers[r.byMem[m]]
	// Completions arrive in posting order per connection, whatever their
	// status or generation: retire the source accounting first.
	if c.Op == rdma.OpWrite && p.writesOut > 0 {
		p.writesOut--
	}
	var postedAt int64
	switch kind {
	case wrSlot:
		if p.fifoLen > 0 {
			postedAt = p.slotPostAt[p.fifoHead]
			p.fifoHead = (p.fifoHead + 1) % len(p.slotFIFO)
			p.fifoLen--
		}
	case wrCommitWord:
		p.commitPending--
	case wrBeat:
		p.beatPending--
	}
	if gen != p.gen {
		return // from an abandoned round or an errored connection
	}
	if c.Status != rdma.StatusSuccess {
		r.stats.OpErrors++
		if c.Status == rdma.StatusRemoteInvalidRequest {
			p.revokedEpoch = r.el.epoch
		}
		r.peerFailed(p)
		return
	}
	switch kind {
	case wrSlot:
		if seq > p.acked {
			p.acked = seq
		}
		if postedAt != 0 {
			r.observeWrite(p, r.now-postedAt)
		}
	case wrCommitWord:
		p.commitInflight = false
	case wrBeat:
		// It landed while the follower still let this leader write: it
		// had granted no newer candidate, which therefore had not
		// prepared it.
		p.onConfirm(p.beatAt)
	case wrHeaderRead:
		p.headerInflight = false
		h := r.region[r.lay.readHeader(m):]
		// A word that fails its check is unknown. A peer whose promise
		// or flags are unknown cannot vote in a recovery; a leader
		// rewrites the promise first thing when it catches the peer up
		// (startCatchup), and the owner rewrites its flags every Step.
		minProp, okMin := openWord(le.Uint64(h[hdrMinProposal:]))
		flags, okFlags := openWord(le.Uint64(h[hdrFlags:]))
		p.minProposal = 0
		if okMin {
			p.minProposal = minProp
		}
		if fuo, ok := openWord(le.Uint64(h[hdrFUO:])); ok && fuo > 0 && fuo-1 != p.applied {
			p.applied = fuo - 1
			p.appliedAt = r.now
		}
		p.rejoining = !okFlags || flags&flagRejoining != 0
		r.notePeerFlags(p, flags, okFlags)
		p.durable, p.durUnder = 0, 0
		if d, ok := openWord(le.Uint64(h[hdrPersisted:])); ok {
			if u, ok := openWord(le.Uint64(h[hdrPersistedUnder:])); ok {
				p.durable, p.durUnder = d, u
			}
		}
		p.headerAt = r.now
		p.hdrOK = okMin
		if okMin && minProp == r.proposal && r.proposal != 0 {
			p.onConfirm(p.headerPostAt) // no newer candidate prepared it
		}
		if r.role == roleLeader {
			r.onLeaderHeader(p)
		}
	case wrMinProposal:
		p.prepOK = true
	case wrWindowRead:
		p.windowParts--
		if p.windowParts == 0 {
			p.windowOK = true
		}
	case wrSnapHeader:
		r.snapBusy = false
		p.state = peerSnapshotSent
		p.since = r.now
	}
}
