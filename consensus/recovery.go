package consensus

import (
	"hash/crc32"

	"github.com/rdmaconsensus/mu/rdma"
)

// windowSlots is how many slots one recovery round reads from each peer:
// ReadWindowSlots, fewer if they exceed RecoveryReadBytes, at least one.
func (r *Replica) windowSlots() uint64 {
	w := max(1, uint64(r.cfg.recoveryReadBytes())/r.lay.SlotStrideBytes)
	return min(w, uint64(r.cfg.ReadWindowSlots))
}

// windowPrefixBytes is how much of each slot a recovery round reads at
// first: the header, and the whole slot when its payload is small. Slots
// are sized for the largest payload while most hold far less; reading the
// rest of a longer slot once its header gives the length (postTails) takes
// a window of three 4 KiB slots from ~62 µs at rxe's 200 MiB/s to ~4 µs.
const windowPrefixBytes = 256

// postWindow reads windowSlots slots starting at index cursor from p, one
// read of the first windowPrefixBytes of each slot (the ring's wrap needs
// no special case).
func (r *Replica) postWindow(p *peer, cursor uint64) {
	w := r.windowSlots()
	stride := r.lay.SlotStrideBytes
	pre := min(windowPrefixBytes, stride)
	local := r.lay.readWindow(p.member)
	p.windowOK = false
	p.windowParts = 0
	r.el.tails[p.member] = false
	for k := uint64(0); k < w; k++ {
		if !r.post(p, rdma.WorkRequest{ID: makeWRID(wrWindowRead, p.member, p.gen, k), Op: rdma.OpRead,
			LocalOffset: local + k*stride, RemoteOffset: r.lay.SlotOffset(cursor + k), Length: uint32(pre)}) {
			return
		}
		p.windowParts++
	}
}

// postTails reads, once per window, the rest of every slot of p's window
// whose whole header for its index gives a length past the prefix read. It
// reports whether it posted any (the window is then incomplete again).
// A slot whose header is not whole, or is of another index, is decided by
// its header alone (decodeSlot).
func (r *Replica) postTails(p *peer) bool {
	if r.el.tails[p.member] {
		return false
	}
	r.el.tails[p.member] = true
	stride := r.lay.SlotStrideBytes
	pre := min(windowPrefixBytes, stride)
	local := r.lay.readWindow(p.member)
	posted := false
	for k := uint64(0); k < r.windowSlots(); k++ {
		i := r.el.cursor + k
		total := slotBytesFor(r.region[local+k*stride:local+(k+1)*stride], i, r.cfg.MaxPayloadBytes)
		if total <= pre {
			continue
		}
		if !posted {
			p.windowOK = false
			p.windowParts = 0
			posted = true
		}
		if !r.post(p, rdma.WorkRequest{ID: makeWRID(wrWindowRead, p.member, p.gen, k), Op: rdma.OpRead,
			LocalOffset: local + k*stride + pre, RemoteOffset: r.lay.SlotOffset(i) + pre, Length: uint32(total - pre)}) {
			return true
		}
		p.windowParts++
	}
	return posted
}

// slotBytesFor is how many bytes the slot in buf occupies when its header
// is whole and of index (0 otherwise: decodeSlot then needs the header only).
func slotBytesFor(buf []byte, index uint64, maxPayload int) uint64 {
	n := le.Uint32(buf[slotLenOff:])
	if le.Uint64(buf[slotIndexOff:]) != index || int64(n) > int64(maxPayload) ||
		crc32.Checksum(buf[:slotCheckOff], castagnoli) != le.Uint32(buf[slotCheckOff:]) {
		return 0
	}
	return encodedSlotBytes(int(n))
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
		voters := voterSet(0) // who voted on index i: complete or provably empty
		own, st := decodeSlot(r.slotBuf(i), i, maxP)
		switch st {
		case slotOK:
			best, bestProp, have, fromOwn = own.payload, own.proposal, true, true
			voters |= r.selfBit()
		case slotEmpty:
			voters |= r.selfBit()
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
				voters |= p.bit()
				if !have || v.proposal > bestProp {
					best, bestProp, have, fromOwn = v.payload, v.proposal, true, false
				}
			case slotEmpty:
				voters |= p.bit()
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
		if !r.quorate(voters) {
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
			RecoveryNs:   now - r.el.preparedAt,
			TookOver:     r.el.cause})
	}
}
