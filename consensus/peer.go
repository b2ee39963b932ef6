package consensus

import "github.com/rdmaconsensus/mu/rdma"

// peerState is the leader's view of one follower's replication.
type peerState uint8

const (
	peerIdle            peerState = iota // not replicating; catch up when granted
	peerHeaderWait                       // header read posted before catch-up
	peerCatchingUp                       // missing range being written, paced
	peerReplicating                      // every new slot is written to it
	peerNeedSnapshot                     // fell off the log; waiting to push a snapshot
	peerSnapshotPosting                  // snapshot writes in flight
	peerSnapshotSent                     // snapshot landed; waiting for it to restore
)

type peer struct {
	id     rdma.NodeID
	member int // index in Config.Members: staging and scratch position
	conn   rdma.Conn
	gen    uint8 // bumps whenever outstanding work must be ignored

	state    peerState
	acked    uint64 // highest index whose write completed (this gen)
	sent     uint64 // highest index posted (this gen)
	hintSent uint64 // highest commit index the peer was told
	since    int64  // when state was entered

	commitInflight bool
	headerInflight bool
	headerAt       int64 // last successful header read
	headerPostAt   int64 // when the header read in flight was posted
	confirmedAt    int64 // latest post time of an operation that confirmed this leader (read.go)
	applied        uint64
	appliedAt      int64 // when applied last moved (header reads)
	minProposal    uint64
	rejoining      bool
	durable        uint64 // its persisted index, valid under durUnder (header reads)
	durUnder       uint64
	snapIndex      uint64
	revokedEpoch   uint64 // request epoch this peer refused a write under
	catchNext      uint64 // next index a paced catch-up will write

	// Writes whose source bytes are still being read by the NIC, across
	// generations (a failed connection completes them with an error): a
	// ring position or staging word is not reused while one is pending.
	slotFIFO      []uint64 // first index of each outstanding slot write, posting order
	slotPostAt    []int64  // beside slotFIFO: when a timed fast-path write was posted, else 0
	fifoHead      int
	fifoLen       int
	writesOut     int // writes posted and not completed (any generation)
	commitPending int
	beatPending   int
	beatAt        int64

	// election round flags
	hdrOK, prepOK, windowOK bool
	windowParts             int

	// Work requests queued during a Step, posted with one Conn.Post at
	// its end (one crossing per peer per Step). The accounting above
	// (writesOut, slotFIFO, commitPending, beatPending) already counts
	// them; unqueue takes back what was never posted.
	batch  []rdma.WorkRequest
	nBatch int
}

// peerFailed abandons everything outstanding to p: its connection is in
// error (or the peer revoked us), so it must be caught up again. What was
// queued for it and not yet posted is dropped.
func (r *Replica) peerFailed(p *peer) {
	r.dropBatch(p)
	p.gen++
	p.commitInflight = false
	p.headerInflight = false
	if p.state == peerSnapshotPosting {
		r.snapBusy = false // its snapshot writes were the ones in flight
	}
	p.state = peerIdle
	p.since = r.now
}

// Offsets of staging words inside a peer's staging line: the local source
// of small writes, one per purpose so a write in flight is never changed.
const (
	stageMinProposal = 0
	stageCommit      = 8
	stageCaughtUp    = 16
	stageBeat        = 24
	stageHandover    = 32
)

// batchSpare is the room in a peer's batch beyond MaxOutstandingWrites,
// for the reads (header, recovery window) that budget does not count.
const batchSpare = 16

// post queues one work request for p's replication connection; the end of
// Step posts each peer's queue in one call. A full queue is posted at once.
// On failure the peer is treated as failed and false is returned.
func (r *Replica) post(p *peer, w rdma.WorkRequest) bool {
	if p.nBatch == len(p.batch) && !r.flushPeer(p) {
		return false
	}
	p.batch[p.nBatch] = w
	p.nBatch++
	if w.Op == rdma.OpWrite {
		p.writesOut++
	}
	return true
}

// flushPeer posts what is queued for p in one Conn.Post. What the
// connection did not accept is taken back and the peer treated as failed.
func (r *Replica) flushPeer(p *peer) bool {
	if p.nBatch == 0 {
		return true
	}
	wrs := p.batch[:p.nBatch]
	n, err := p.conn.Post(wrs)
	if err == nil && n == len(wrs) {
		p.nBatch = 0
		return true
	}
	r.stats.OpErrors++
	r.unqueue(p, wrs[max(n, 0):])
	p.nBatch = 0
	r.peerFailed(p)
	return false
}

// dropBatch discards what is queued for p and not posted.
func (r *Replica) dropBatch(p *peer) {
	r.unqueue(p, p.batch[:p.nBatch])
	p.nBatch = 0
}

// unqueue takes back the accounting of work requests that were queued
// but never posted, which are the newest: slot writes at the FIFO's tail.
func (r *Replica) unqueue(p *peer, wrs []rdma.WorkRequest) {
	for k := len(wrs) - 1; k >= 0; k-- {
		w := wrs[k]
		if w.Op == rdma.OpWrite && p.writesOut > 0 {
			p.writesOut--
		}
		kind, _, _, _ := splitWRID(w.ID)
		switch kind {
		case wrSlot:
			if p.fifoLen > 0 {
				p.fifoLen--
			}
		case wrCommitWord:
			p.commitPending--
		case wrBeat:
			p.beatPending--
		}
	}
}

// writesFor is how many writes of at most MaxWriteBytes length bytes take.
func (r *Replica) writesFor(length uint64) int {
	m := uint64(r.cfg.MaxWriteBytes)
	return int((length + m - 1) / m)
}

// postSlots writes length bytes of own slots starting at index first (the
// last one being index last) to the same offset at p, as writes of at most
// MaxWriteBytes in ascending address order. Only the final write carries
// last as its sequence, so p.acked moves when the whole range is in. Each
// write is recorded as reading its ring positions until it completes.
// timed marks a fast-path write whose completion latency is recorded
// (catch-up ranges are not: their latency is queueing behind the range).
func (r *Replica) postSlots(p *peer, first, last uint64, length uint32, timed bool) bool {
	pieces := r.writesFor(uint64(length))
	if p.fifoLen+pieces > len(p.slotFIFO) || p.writesOut+pieces > r.cfg.MaxOutstandingWrites {
		r.peerFailed(p) // too much outstanding: catch it up later
		return false
	}
	base := r.lay.SlotOffset(first)
	mw := uint32(r.cfg.MaxWriteBytes)
	for off := uint32(0); off < length; off += mw {
		n := min(mw, length-off)
		seq := first - 1
		if off+n == length {
			seq = last
		}
		if !r.post(p, rdma.WorkRequest{ID: makeWRID(wrSlot, p.member, p.gen, seq), Op: rdma.OpWrite,
			LocalOffset: base + uint64(off), RemoteOffset: base + uint64(off), Length: n}) {
			return false
		}
		at := (p.fifoHead + p.fifoLen) % len(p.slotFIFO)
		p.slotFIFO[at] = first
		p.slotPostAt[at] = 0
		if timed && off+n == length {
			p.slotPostAt[at] = r.now
		}
		p.fifoLen++
	}
	return true
}

// sourcePending reports whether a write still outstanding to p reads the
// ring position of index (an older occupant): with LogSlots > MaxInflight
// and ranges bounded by LogSlots, any outstanding write that starts at or
// below index may cover it.
func (p *peer) sourcePending(index uint64) bool {
	for k := 0; k < p.fifoLen; k++ {
		if p.slotFIFO[(p.fifoHead+k)%len(p.slotFIFO)] <= index {
			return true
		}
	}
	return false
}

func (r *Replica) slotBuf(index uint64) []byte {
	off := r.lay.SlotOffset(index)
	return r.region[off : off+r.lay.SlotStrideBytes]
}

// postHeaderRead reads a peer's header line (its min_proposal, first
// undecided index, flags and, in sync mode, persisted index) into its
// read-back buffer.
func (r *Replica) postHeaderRead(p *peer) {
	p.headerInflight = true
	p.headerPostAt = r.now
	p.hdrOK = false
	r.post(p, rdma.WorkRequest{ID: makeWRID(wrHeaderRead, p.member, p.gen, 0), Op: rdma.OpRead,
		LocalOffset: r.lay.readHeader(p.member), RemoteOffset: 0, Length: headerBytes})
}
