package consensus

import "hash/crc32"

// learnCommit raises the commit index from the header commit word and from
// the hints in complete slots past the applied position.
func (r *Replica) learnCommit() {
	if c, ok := openWord(le.Uint64(r.region[hdrCommit:])); ok && c > r.commit {
		r.commit = c
	}
	if r.scanPos <= r.applied {
		r.scanPos = r.applied + 1
	}
	for k := 0; k < r.cfg.MaxInflightSlots+1; k++ {
		v, st := decodeSlot(r.slotBuf(r.scanPos), r.scanPos, r.cfg.MaxPayloadBytes)
		if st != slotOK {
			break
		}
		if v.hint > r.commit {
			r.commit = v.hint
		}
		r.scanPos++
	}
}

// applyCommitted applies every committed slot in order. A committed slot
// that is missing or fails its checksum is re-examined after
// CorruptConfirmNs and then fences the replica.
func (r *Replica) applyCommitted() (wake int64) {
	for r.applied < r.commit {
		i := r.applied + 1
		v, st := decodeSlot(r.slotBuf(i), i, r.cfg.MaxPayloadBytes)
		switch st {
		case slotOK:
			r.suspectIdx = 0
			// A checksum covers what the writer wrote, not that it framed
			// it well: a slot whose batch framing is inconsistent came
			// from a faulty peer and is treated as corruption, whole.
			if _, conf := decodeConf(v.payload); !conf && !forEachCommand(v.payload, noCommand) {
				r.reportCorrupt(i)
				return 0
			}
			if r.cfg.Verifier != nil {
				r.cfg.Verifier.RecordRead(true)
			}
			r.applySlot(i, v.payload)
		case slotReplaced:
			// The leader reused this position: we fell off the log and
			// wait for a snapshot.
			r.behind = true
			return 0
		case slotEmpty, slotDamaged:
			// Committed but not here whole: a transport gap, or a write
			// cut short, not a checksum failure. Wait; the leader notices
			// the stalled applied position and catches this replica up
			// again, which rewrites the slot.
			r.stats.CommitGaps++
			return 0
		default:
			if r.suspectIdx != i {
				r.suspectIdx, r.suspectAt = i, r.now
				return r.now + r.cfg.CorruptConfirmNs
			}
			if r.now-r.suspectAt < r.cfg.CorruptConfirmNs {
				return r.suspectAt + r.cfg.CorruptConfirmNs
			}
			r.reportCorrupt(i)
			return 0
		}
	}
	return 0
}

// reportCorrupt counts and reports a log slot that failed its check where
// it had to be whole, and fences the replica.
func (r *Replica) reportCorrupt(i uint64) {
	r.stats.CorruptSlots++
	if r.cfg.Verifier != nil {
		r.cfg.Verifier.RecordRead(false)
	}
	if r.cfg.OnCorruption != nil {
		r.cfg.OnCorruption(CorruptionReport{Index: Index(i), AtNs: r.now})
	}
	r.Fence()
	r.fence()
}

// applySlot applies the commands of slot i, whose framing applyCommitted
// has checked.
func (r *Replica) applySlot(i uint64, payload []byte) {
	// The waiters of slot i, in order, proposed its commands in order
	// (proposeQueued drained them so); a slot written in an earlier term
	// has none.
	w, left := r.wHead, r.wLen
	if v, ok := decodeConf(payload); ok {
		r.applyConf(i, v)
		payload = nil
	}
	forEachCommand(payload, func(cmd []byte) {
		r.stats.Commands++
		if r.ra == nil {
			r.sm.Apply(Index(i), cmd)
			return
		}
		if left > 0 && r.waiters[w].index == i {
			c := &r.ring.cells[r.waiters[w].cell]
			c.result = r.ra.ApplyResult(Index(i), cmd, c.result[:0])
			w, left = (w+1)%len(r.waiters), left-1
			return
		}
		r.raScratch = r.ra.ApplyResult(Index(i), cmd, r.raScratch[:0])
	})
	r.applied = i
	r.behind = false
	r.stats.Applied++
	r.foldConf()
	r.confApplied()
	le.PutUint64(r.region[hdrFUO:], sealWord(i+1))
	if r.cfg.OnCommit != nil {
		r.cfg.OnCommit(Index(i))
	}
	for r.wLen > 0 && r.waiters[r.wHead].index <= i {
		w := r.waiters[r.wHead]
		r.wHead = (r.wHead + 1) % len(r.waiters)
		r.wLen--
		r.deliver(w.cell, w.index, nil)
	}
}

// checkSnapshot restores a snapshot a leader pushed into the region.
func (r *Replica) checkSnapshot() {
	if r.cfg.SnapshotMaxBytes == 0 {
		return
	}
	h := r.region[r.lay.SnapshotOffset:]
	idx := le.Uint64(h[snapIndexOff:])
	if idx <= r.applied || le.Uint32(h[snapCanaryOff:]) != canaryFor(idx)^snapshotCanaryMix {
		return
	}
	n := le.Uint64(h[snapLenOff:])
	if n > r.lay.SnapshotMaxBytes {
		return
	}
	data := h[snapHeaderBytes : snapHeaderBytes+n]
	if crc32.Checksum(data, castagnoli) != le.Uint32(h[snapCRCOff:]) {
		return // still arriving, or torn: the leader retries
	}
	mem := r.mem
	if err := r.sm.Restore(Index(idx), r.unwrapSnapshot(data)); err != nil {
		r.mem = mem
		return
	}
	le.PutUint32(h[snapCanaryOff:], 0)
	r.journalSnapshot(idx, data)
	r.stats.SnapshotsRestored++
	r.applied = idx
	r.behind = false
	if r.commit < idx {
		r.commit = idx
	}
	r.scanPos = idx + 1
	r.foldConf()
	le.PutUint64(r.region[hdrFUO:], sealWord(idx+1))
}

// publishHeader rewrites the header words this replica owns (first
// undecided index, flags) from its state, which also repairs a word that
// memory damage flipped.
func (r *Replica) publishHeader() {
	le.PutUint64(r.region[hdrFUO:], sealWord(r.applied+1))
	var flags uint64
	if r.rejoining {
		flags = flagRejoining
	}
	flags |= r.restoredFlags()
	le.PutUint64(r.region[hdrFlags:], sealWord(flags))
}
