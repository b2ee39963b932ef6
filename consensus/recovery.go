package consensus

import "github.com/rdmaconsensus/mu/rdma"

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
	// A read must see what an earlier leader may have acknowledged: all
	// of the recovered log.
	r.takingOver = false
	r.readFloor = end - 1
	r.readFloorA.Store(r.readFloor)
	r.dropLease()
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
