package consensus

import (
	"context"
	"sync"
)

// Linearizable reads without a log entry (docs/reads.md). A read is
// answered once this replica has shown it still leads after the read
// arrived and has applied every entry acknowledged before it:
//
//   - read index: the driver takes the read at the start of a Step (T0),
//     notes max(commit, the end of its recovery) and then needs a
//     majority, itself included, to confirm it after T0: a header read
//     of a follower posted at or after T0 that finds the follower's
//     min_proposal still this leader's proposal (no newer candidate
//     prepared it), or its own holder and promise checked at a Step at
//     or after T0. A newer leader commits only after preparing a
//     majority, which meets the confirming one, so nothing was committed
//     by a newer leader before T0.
//   - lease (Config.ReadLeaseNs > 0): confirmations by header reads and
//     beat writes keep a lease until the q-th latest confirmation's post
//     time plus leaseNs; a candidate waits ReadLeaseNs after its prepare
//     before it leads, so no newer leader commits while the lease holds
//     and the leader answers from its state without a round trip.

// readResult is delivered to a blocking ReadIndex.
type readResult struct {
	index Index
	err   error
}

// readCell is one preallocated read request, owned by the ring from claim
// until its result is delivered (even if the caller gave up).
type readCell struct {
	token uint64
	wait  bool
	done  chan readResult // buffered 1
	atNs  int64           // T0: the Step that took it
	index uint64          // what must be applied before it is answered
}

// readRing hands read requests from any goroutine to the driver without
// allocating: a free stack and a FIFO of claimed cells (like submitRing).
type readRing struct {
	mu      sync.Mutex
	cells   []readCell
	free    []int32
	queue   []int32
	qHead   int
	qLen    int
	stopErr error
}

func newReadRing(n int) *readRing {
	r := &readRing{cells: make([]readCell, n), free: make([]int32, n), queue: make([]int32, n)}
	for i := range r.cells {
		r.cells[i].done = make(chan readResult, 1)
		r.free[i] = int32(n - 1 - i)
	}
	return r
}

func (q *readRing) claim(token uint64, wait bool) (int32, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopErr != nil {
		return -1, q.stopErr
	}
	if len(q.free) == 0 {
		return -1, ErrQueueFull
	}
	id := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	c := &q.cells[id]
	c.token, c.wait = token, wait
	q.queue[(q.qHead+q.qLen)%len(q.queue)] = id
	q.qLen++
	return id, nil
}

// take pops the oldest queued cell (under mu).
func (q *readRing) take() (int32, bool) {
	if q.qLen == 0 {
		return -1, false
	}
	id := q.queue[q.qHead]
	q.qHead = (q.qHead + 1) % len(q.queue)
	q.qLen--
	return id, true
}

// ReadIndex returns once a read of the state machine here is linearizable:
// this replica leads and has applied every command acknowledged (by any
// leader) before the call. The index returned is applied. Reading the
// state machine afterwards (under its own lock: the driver applies
// concurrently) sees at least that state. Under a held lease it answers
// without waiting for the driver; otherwise the driver confirms its
// leadership with one round of reads to a majority. A replica that does
// not lead returns a *NotLeaderError (errors.Is(err, ErrNotLeader)),
// also when it loses leadership before the read is confirmed. Nothing is
// allocated per call. Safe from any goroutine but the driver's (use
// SubmitRead there).
func (r *Replica) ReadIndex(ctx context.Context) (Index, error) {
	if err := r.checkRead(); err != nil {
		return 0, err
	}
	if idx, ok := r.LeaseRead(); ok {
		return idx, nil
	}
	id, err := r.reads.claim(0, true)
	if err != nil {
		return 0, err
	}
	q := r.reads
	c := &q.cells[id]
	select {
	case res := <-c.done:
		q.mu.Lock()
		q.free = append(q.free, id)
		q.mu.Unlock()
		return res.index, res.err
	case <-ctx.Done():
		q.mu.Lock()
		select {
		case <-c.done:
			q.free = append(q.free, id)
		default:
			c.wait = false // the driver frees it
		}
		q.mu.Unlock()
		return 0, ctx.Err()
	}
}

// Read calls fn once a read is linearizable (ReadIndex), on the calling
// goroutine: fn reads the state machine, under the state machine's own
// lock, and sees every command acknowledged before Read was called.
func (r *Replica) Read(ctx context.Context, fn func()) error {
	if _, err := r.ReadIndex(ctx); err != nil {
		return err
	}
	fn()
	return nil
}

// LeaseRead reports whether this replica holds its read lease now and has
// applied what a read needs: then a read of the state machine is
// linearizable at once, with no round trip. False without a lease
// (Config.ReadLeaseNs is 0, it expired, or this replica does not lead);
// ReadIndex then confirms leadership with the driver. Safe from any
// goroutine; it reads the fabric clock.
func (r *Replica) LeaseRead() (Index, bool) {
	if r.cfg.ReadLeaseNs == 0 || !r.isLeader.Load() {
		return 0, false
	}
	until := r.leaseUntilA.Load()
	if until == 0 || r.f.Now() >= until {
		return 0, false
	}
	// The commit index at the call covers what this leader acknowledged
	// (it acknowledges only what it applied); the floor covers what an
	// earlier leader may have acknowledged.
	idx := max(r.commitA.Load(), r.readFloorA.Load())
	if r.appliedA.Load() < idx {
		return 0, false
	}
	return Index(idx), true
}

// SubmitRead queues a read without blocking: its outcome (the index to
// read at, applied by then, or an error) goes to the handler set with
// SetReadHandler, with token, from a later Step. For callers on the
// driving goroutine, such as the simulator; answering under a lease
// waits for the next Step too.
func (r *Replica) SubmitRead(token uint64) error {
	if err := r.checkRead(); err != nil {
		return err
	}
	_, err := r.reads.claim(token, false)
	return err
}

// SetReadHandler sets where SubmitRead outcomes go. Call before stepping.
func (r *Replica) SetReadHandler(fn ResultFunc) { r.onRead = fn }

func (r *Replica) checkRead() error {
	if r.closing.Load() {
		return ErrClosed
	}
	return r.servingErr()
}

// deliverRead reports a read's outcome and frees its cell as its caller
// requires.
func (r *Replica) deliverRead(id int32, index uint64, err error) {
	q := r.reads
	q.mu.Lock()
	c := &q.cells[id]
	if c.wait {
		c.done <- readResult{index: Index(index), err: err}
		q.mu.Unlock()
		return
	}
	token := c.token
	q.free = append(q.free, id)
	q.mu.Unlock()
	if r.onRead != nil {
		r.onRead(token, Index(index), err)
	}
}

// takeReads moves the reads queued since the last Step into the pending
// FIFO with T0 = now. It runs first in a Step, before anything is posted,
// so every confirmation posted in this Step or later is issued after the
// reads arrived. A replica that does not lead fails them.
func (r *Replica) takeReads(now int64) {
	q := r.reads
	for {
		q.mu.Lock()
		id, ok := q.take()
		q.mu.Unlock()
		if !ok {
			return
		}
		if r.role != roleLeader || r.fenced {
			r.deliverRead(id, 0, r.notLeader())
			continue
		}
		c := &q.cells[id]
		c.atNs = now
		c.index = max(r.commit, r.readFloor)
		r.pending[(r.pHead+r.pLen)%len(r.pending)] = id
		r.pLen++
	}
}

func (r *Replica) notLeader() error {
	if r.fenced {
		return ErrFenced
	}
	l, known := r.Leader()
	return &NotLeaderError{Leader: l, Known: known}
}

// failReads fails every pending and queued read with err.
func (r *Replica) failReads(err error) {
	for r.pLen > 0 {
		id := r.pending[r.pHead]
		r.pHead = (r.pHead + 1) % len(r.pending)
		r.pLen--
		r.deliverRead(id, 0, err)
	}
	q := r.reads
	for {
		q.mu.Lock()
		id, ok := q.take()
		q.mu.Unlock()
		if !ok {
			return
		}
		r.deliverRead(id, 0, err)
	}
}

// serveReads is the leader's read work at the end of its Step: confirm
// itself, renew the lease, start a confirmation round for reads the lease
// does not cover, and answer the reads that are confirmed and applied.
func (r *Replica) serveReads(now int64) {
	if r.role != roleLeader {
		return
	}
	// Self: nobody else holds this log and its promise is still ours,
	// checked now (stepRole steps down on a grant to another node).
	if h, ok := r.perms.Holder(); ok && h == r.self {
		if v, ok := openWord(le.Uint64(r.region[hdrMinProposal:])); ok && v == r.proposal {
			r.selfConfirmedAt = now
		}
	}
	r.renewLease()
	leased := r.leaseUntil != 0 && now < r.leaseUntil
	for r.pLen > 0 {
		id := r.pending[r.pHead]
		c := &r.reads.cells[id]
		if !leased && !r.confirmedSince(c.atNs) {
			r.requestConfirm(c.atNs)
			return
		}
		if r.applied < c.index {
			return // answered at a later Step, once the commit moves
		}
		r.pHead = (r.pHead + 1) % len(r.pending)
		r.pLen--
		r.stats.Reads++
		if leased {
			r.stats.LeaseReads++
		}
		r.deliverRead(id, r.applied, nil)
	}
}

// confirmedSince reports whether a majority, counting this replica,
// confirmed its leadership by operations issued at or after t.
func (r *Replica) confirmedSince(t int64) bool {
	var have voterSet
	if r.selfConfirmedAt >= t {
		have |= r.selfBit()
	}
	for i := range r.peers {
		if r.peers[i].confirmedAt >= t {
			have |= r.peers[i].bit()
		}
	}
	return r.quorate(have)
}

// requestConfirm reads the header of every follower that has not
// confirmed since t and has no header read issued since t in flight; the
// reads complete into confirmedAt (dispatch).
func (r *Replica) requestConfirm(t int64) {
	for i := range r.peers {
		p := &r.peers[i]
		if p.confirmedAt >= t || p.headerInflight {
			continue // an older read in flight: asked again once it completes
		}
		switch p.state {
		case peerReplicating, peerCatchingUp, peerSnapshotSent:
			r.postHeaderRead(p)
		}
	}
}

// renewLease sets the lease from the confirmations of this term: the q-th
// latest confirmation time plus the lease length on this clock.
func (r *Replica) renewLease() {
	if r.cfg.ReadLeaseNs == 0 {
		return
	}
	r.scratchLease[r.selfIdx] = uint64(max(r.selfConfirmedAt, 0))
	for i := range r.peers {
		r.scratchLease[r.peers[i].member] = uint64(max(r.peers[i].confirmedAt, 0))
	}
	s := int64(r.quorumIndex(r.scratchLease))
	if s <= 0 {
		r.leaseUntil = 0
	} else {
		r.leaseUntil = s + r.cfg.leaseNs()
	}
	r.leaseUntilA.Store(r.leaseUntil)
}

// onConfirm records that p confirmed this leader by an operation posted at
// postedAt.
func (p *peer) onConfirm(postedAt int64) {
	if postedAt > p.confirmedAt {
		p.confirmedAt = postedAt
	}
}

// dropLease forgets this term's lease and confirmations.
func (r *Replica) dropLease() {
	r.leaseUntil = 0
	r.leaseUntilA.Store(0)
	r.selfConfirmedAt = 0
	for i := range r.peers {
		r.peers[i].confirmedAt = 0
	}
}
