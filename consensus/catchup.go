package consensus

import (
	"hash/crc32"

	"github.com/rdmaconsensus/mu/rdma"
)

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
		r.stepDown(StepDownDeposed)
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

// startSnapshot pushes a state-machine snapshot to a follower that fell off
// the log: bytes first, then the header whose canary makes it visible.
func (r *Replica) startSnapshot(p *peer) {
	if r.snapBusy || r.cfg.SnapshotMaxBytes == 0 || p.conn.State() != rdma.ConnReady ||
		r.now-p.since < r.retryNs() {
		return
	}
	data, err := r.sm.Snapshot()
	if err != nil || uint64(snapMemBytes+len(data)) > r.lay.SnapshotMaxBytes {
		// The follower stays off the log; counted so an operator sees it
		// (raise SnapshotMaxBytes or LogSlots).
		r.stats.SnapshotFailures++
		p.since = r.now
		return
	}
	idx := r.applied
	area := r.lay.SnapshotOffset
	h := r.region[area : area+snapHeaderBytes]
	// The membership travels ahead of the state machine's bytes: the
	// follower needs it to decide the indexes after the snapshot.
	body := r.region[area+snapHeaderBytes : area+snapHeaderBytes+snapMemBytes+uint64(len(data))]
	r.wrapSnapshot(body)
	copy(body[snapMemBytes:], data)
	data = body
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
