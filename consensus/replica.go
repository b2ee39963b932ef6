package consensus

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"

	"github.com/rdmaconsensus/mu/hwmon/failslow"
	"github.com/rdmaconsensus/mu/permissions"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
)

var le = binary.LittleEndian

type role uint8

const (
	roleFollower role = iota
	roleCandidate
	roleLeader
)

func (r role) String() string {
	switch r {
	case roleFollower:
		return "follower"
	case roleCandidate:
		return "candidate"
	case roleLeader:
		return "leader"
	}
	return "role(?)"
}

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

// election is the progress of a leader change.
type election struct {
	phase    uint8
	epoch    uint64
	phaseAt  int64
	startAt  int64
	proposal uint64
	start    uint64 // S: first index recovered
	cursor   uint64 // first index of the window being read
	members  []bool // peers used for this recovery round (by member)

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
)

// waiter ties a drained proposal to the index it was written at.
type waiter struct {
	index uint64
	cell  int32
}

// Stats are counters for monitoring; read them with Replica.Stats.
type Stats struct {
	Applied           uint64 // entries (slots) applied
	Commands          uint64 // commands applied
	Commit            uint64
	LeaderTerms       uint64 // times this replica became leader
	Elections         uint64 // leader changes started
	CorruptSlots      uint64 // slots that failed their checksum where they had to be whole
	OpErrors          uint64 // failed completions
	CatchUps          uint64 // bulk catch-ups started
	SnapshotsSent     uint64
	SnapshotsRestored uint64
	SnapshotFailures  uint64 // snapshots that failed or exceeded SnapshotMaxBytes
	ReclaimStalls     uint64 // Steps where the ring was full
	CommitWords       uint64 // idle-leader commit words written
	CommitGaps        uint64 // Steps where a committed slot had not arrived whole
	DamagedSlots      uint64 // slots read in a recovery that were neither whole nor provably empty
	Deposed           uint64 // times this leader stepped down on seeing a higher proposal
	StaleFlushes      uint64 // connections reset to drop writes of an earlier term
	Recatchups        uint64 // followers re-caught-up after their applied position stalled
	Probes            uint64 // empty entries an idle leader wrote as probes

	// Durability (async and sync modes).
	Persisted         uint64 // highest index this replica holds durably under the current proposal
	JournalRecords    uint64 // records in the journal (loaded and appended)
	LossWindowEntries uint64 // committed entries not yet durable here: what a total failure now would lose (async)
	LossWindowNs      int64  // how long the oldest of them has waited
	StorageErrors     uint64 // storage failures (each fences the replica; see StorageErr)
	JournalDamaged    uint64 // 1 if the journal loaded at start was damaged and discarded
	RestoredIndex     uint64 // applied index restored from the journal at start
}

// Replica is one member of a Mu cluster. Step must be called from one
// goroutine at a time; Propose, Submit and the accessors are safe from any.
type Replica struct {
	cfg     Config
	lay     Layout
	f       rdma.Fabric
	region  []byte
	sm      StateMachine
	det     Detector
	perms   Permissions
	self    rdma.NodeID
	selfIdx int
	n       int
	q       int
	peers   []peer
	byMem   []int // member index -> peers index, -1 for self

	comps   []rdma.Completion
	acks    []uint64
	scratch []uint64

	now        int64
	role       role
	fenced     bool
	rejoining  bool
	behind     bool // fell off the log; waiting for a snapshot
	applied    uint64
	commit     uint64
	scanPos    uint64
	suspectIdx uint64
	suspectAt  int64

	// leadership
	wantSince     int64
	el            election
	proposal      uint64
	next          uint64
	commitAt      int64
	noQuorumSince int64
	blindSince    int64 // since when the detector shows no majority alive
	beat          uint64
	seenBeat      uint64 // last leader beat word seen in the header
	seenBeatAt    int64
	holderSeen    rdma.NodeID
	holderAt      int64 // when the holder of this log last changed
	degradeUntil  int64
	health        Health
	snapBusy      bool
	lastRequestAt int64

	ring      *submitRing
	ra        ResultApplier // sm's result form, nil if it has none
	raScratch []byte        // results of commands no proposer waits for here
	onResult  ResultFunc
	waiters   []waiter
	wHead     int
	wLen      int
	isLeader  atomic.Bool
	fencedA   atomic.Bool
	degradedA atomic.Bool
	stats     Stats
	commitA   atomic.Uint64
	appliedA  atomic.Uint64
	leaderA   atomic.Uint32 // detector's leader + 1, 0 unknown

	pdet  *pullscore.Detector
	pperm *permissions.Manager

	js *journal // nil in memory mode

	// layer 2: write latency per follower and probe commit latency, made
	// on the first observation (only a leader observes; each costs a few
	// hundred KB of histograms)
	lat        atomic.Pointer[failslow.Tracker]
	probeLat   atomic.Pointer[failslow.Tracker] // keyed by this replica's id
	nowA       atomic.Int64                     // Step's clock, for the latency accessors
	lastSlotAt int64                            // when this leader last wrote a new slot
	probeIndex uint64                           // outstanding probe, 0 if none
	probeAt    int64
	fenceReq   atomic.Bool // Fence was called; Step carries it out

	// Lifecycle. stepMu is held by every Step and by Run for as long as
	// it drives, so Close, which takes it, returns only once no Step can
	// touch the region again.
	stepMu  sync.Mutex
	closing atomic.Bool // Close was called: Run returns, Step does nothing
	closed  bool        // under stepMu: queued proposals were failed
	running atomic.Bool // a Run is driving

	// Stats as of the end of the latest Step, for readers on any
	// goroutine (the driver's own counters are not synchronised).
	statsMu  sync.Mutex
	statsPub Stats
}

// NewWithSeams builds a replica over fabric f with a caller-supplied
// detector and permission manager, which must use the areas NewLayout(cfg)
// places for them. The region must be at least cfg.RegionBytes(); the
// replica initialises its header and log. Most callers want New.
func NewWithSeams(f rdma.Fabric, sm StateMachine, det Detector, perms Permissions, cfg Config) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Members = sortedMembers(cfg.Members)
	if f == nil || sm == nil || det == nil || perms == nil {
		return nil, fmt.Errorf("%w: fabric, state machine, detector and permissions are required", ErrInvalidConfig)
	}
	lay := NewLayout(cfg)
	region := f.Region().Bytes()
	if uint64(len(region)) < lay.TotalBytes {
		return nil, fmt.Errorf("%w: region is %d bytes, layout needs %d (Config.RegionBytes)", ErrInvalidConfig, len(region), lay.TotalBytes)
	}
	r := &Replica{
		cfg: cfg, lay: lay, f: f, region: region, sm: sm, det: det, perms: perms,
		self: f.Self(), n: len(cfg.Members), selfIdx: -1,
	}
	r.q = quorum(r.n)
	r.byMem = make([]int, r.n)
	for i, id := range cfg.Members {
		if id == r.self {
			r.selfIdx = i
			r.byMem[i] = -1
			continue
		}
		r.byMem[i] = len(r.peers)
		r.peers = append(r.peers, peer{id: id, member: i, conn: f.Conn(id, rdma.PlaneReplication),
			slotFIFO: make([]uint64, cfg.MaxOutstandingWrites), slotPostAt: make([]int64, cfg.MaxOutstandingWrites),
			batch: make([]rdma.WorkRequest, cfg.MaxOutstandingWrites+batchSpare)})
	}
	if r.selfIdx < 0 {
		return nil, cfgErr("Members", "does not list this node (%d)", r.self)
	}
	for i := range r.peers {
		if r.peers[i].conn == nil {
			return nil, fmt.Errorf("%w: no replication connection to node %d", ErrInvalidConfig, r.peers[i].id)
		}
	}
	r.comps = make([]rdma.Completion, 64)
	r.acks = make([]uint64, r.n)
	r.scratch = make([]uint64, r.n)
	r.el.members = make([]bool, r.n)
	r.ring = newSubmitRing(cfg.SubmitQueue, cfg.MaxProposalBytes())
	r.ra, _ = sm.(ResultApplier)
	r.waiters = make([]waiter, cfg.SubmitQueue)
	r.next = 1
	r.scanPos = 1

	// Header and log start clean: a restarted replica has lost its log and
	// says so (flagRejoining) until a leader catches it up.
	clear(region[:headerBytes])
	clear(region[lay.SnapshotOffset : lay.SnapshotOffset+snapHeaderBytes])
	clear(region[lay.LogOffset : lay.LogOffset+lay.LogSlots*lay.SlotStrideBytes])
	r.rejoining = cfg.Rejoining
	if cfg.Durability != DurabilityMemory {
		r.js = newJournal(&cfg, &lay)
		voter, damaged, err := r.restoreJournal()
		if err != nil {
			return nil, err
		}
		switch {
		case damaged:
			r.rejoining = true // it cannot prove what it accepted
		case !voter && r.js.records == 0 && cfg.NewCluster:
			// A member of a cluster being created: nothing to forget.
			r.journalVoter()
		case !voter:
			// An empty data directory without the new-cluster flag (a
			// lost disk, a new machine), or a journal that never caught
			// up: it may have counted for what it does not hold.
			r.rejoining = true
		case cfg.Durability == DurabilityAsync:
			// Its peers may have counted in memory what it never
			// persisted: its log proves too little to vote on.
			r.rejoining = true
		}
		if r.rejoining {
			r.js.voter = false
		}
	}
	r.publishHeader()
	if r.rejoining {
		r.setHealth(HealthDegraded)
	}
	return r, nil
}

// Layout returns the region layout in use.
func (r *Replica) Layout() Layout { return r.lay }

// Self is this replica's node id.
func (r *Replica) Self() rdma.NodeID { return r.self }

// IsLeader reports whether this replica currently leads (safe from any goroutine).
func (r *Replica) IsLeader() bool { return r.isLeader.Load() }

// CommitIndex is the highest index this replica knows committed.
func (r *Replica) CommitIndex() Index { return Index(r.commitA.Load()) }

// AppliedIndex is the highest index applied to the state machine.
func (r *Replica) AppliedIndex() Index { return Index(r.appliedA.Load()) }

// Fenced reports whether the replica fenced itself (safe from any goroutine).
func (r *Replica) Fenced() bool { return r.fencedA.Load() }

// Stats returns the counters as of the end of the latest Step. Safe from
// any goroutine.
func (r *Replica) Stats() Stats {
	r.statsMu.Lock()
	s := r.statsPub
	r.statsMu.Unlock()
	return s
}

// publishStats copies the driver's counters for Stats: one uncontended
// lock and a copy per Step, no allocation.
func (r *Replica) publishStats() {
	r.statsMu.Lock()
	r.statsPub = r.stats
	r.statsPub.Commit = r.commit
	r.durabilityStats(&r.statsPub)
	r.statsMu.Unlock()
}

// Leader returns the detector's current leader choice.
func (r *Replica) Leader() (rdma.NodeID, bool) {
	v := r.leaderA.Load()
	if v == 0 {
		return 0, false
	}
	return rdma.NodeID(v - 1), true
}

// SetDegraded marks the replica degraded (or clears the mark): it
// advertises Degraded in its heartbeat, so peers stop deferring to it as
// leader and elect a healthy replica (a degraded leader steps down once
// its detector names a healthy live peer); it keeps replicating. For the
// hardware arbiter (fail-slow disk, CE storm). Safe from any goroutine.
func (r *Replica) SetDegraded(on bool) { r.degradedA.Store(on) }

// Fence stops the replica from leading, applying and accepting proposals,
// and advertises it in the heartbeat so peers elect someone else. Safe
// from any goroutine (the hardware monitor's): proposals are refused at
// once; the heartbeat stops and leadership is given up at the next Step.
// A fence lasts until the process restarts.
func (r *Replica) Fence() {
	r.fencedA.Store(true)
	r.fenceReq.Store(true)
}

// fence carries out a fence on the driving goroutine.
func (r *Replica) fence() {
	if r.fenced {
		return
	}
	r.fenced = true
	r.fencedA.Store(true)
	r.setHealth(HealthFenced)
	if r.role != roleFollower {
		r.stepDown()
	}
}

func (r *Replica) setHealth(h Health) {
	if r.health == h && h != HealthHealthy {
		return
	}
	r.health = h
	r.det.SetHealth(h)
}

// Propose replicates data and blocks until it is committed and applied on
// this replica (the leader), or ctx ends. It copies data; nothing is
// allocated per call on success. A replica that is not the leader returns a
// *NotLeaderError (errors.Is(err, ErrNotLeader)).
func (r *Replica) Propose(ctx context.Context, data []byte) (Index, error) {
	idx, _, err := r.propose(ctx, data, nil, false)
	return idx, err
}

// ProposeResult is Propose that also returns the state machine's result
// for the command (see ResultApplier for when one is delivered), appended
// to out[:0]: with enough capacity in out nothing is allocated. Without a
// ResultApplier the result is empty.
func (r *Replica) ProposeResult(ctx context.Context, data, out []byte) (Index, []byte, error) {
	return r.propose(ctx, data, out, true)
}

func (r *Replica) propose(ctx context.Context, data, out []byte, wantResult bool) (Index, []byte, error) {
	if err := r.checkProposal(data); err != nil {
		return 0, nil, err
	}
	id, err := r.ring.claim(data, 0, true)
	if err != nil {
		return 0, nil, err
	}
	c := &r.ring.cells[id]
	select {
	case res := <-c.done:
		if wantResult && res.err == nil {
			out = append(out[:0], c.result...)
		} else {
			out = nil
		}
		r.ring.mu.Lock()
		r.ring.release(id)
		r.ring.mu.Unlock()
		return res.index, out, res.err
	case <-ctx.Done():
		r.ring.mu.Lock()
		select {
		case <-c.done: // delivered meanwhile: the cell is ours to free
			r.ring.release(id)
		default:
			c.wait = false // the deliverer frees it
		}
		r.ring.mu.Unlock()
		return 0, nil, ctx.Err()
	}
}

// Submit queues data without blocking and copies it. The outcome (the
// index on commit, or an error) goes to the handler set with
// SetResultHandler, with token, from a later Step. This is the form for
// callers on the driving goroutine, such as the simulator.
func (r *Replica) Submit(data []byte, token uint64) error {
	if err := r.checkProposal(data); err != nil {
		return err
	}
	_, err := r.ring.claim(data, token, false)
	return err
}

// ResultFunc receives the outcome of a Submit: the index on commit, or an
// error (ErrNotLeader, ErrLeadershipLost, ErrFenced).
type ResultFunc func(token uint64, index Index, err error)

// SetResultHandler sets where Submit outcomes go. Call before stepping.
func (r *Replica) SetResultHandler(fn ResultFunc) { r.onResult = fn }

func (r *Replica) checkProposal(data []byte) error {
	if r.closing.Load() {
		return ErrClosed
	}
	if max := r.cfg.MaxProposalBytes(); len(data) > max {
		return fmt.Errorf("%w: %d bytes, MaxProposalBytes is %d", ErrTooLarge, len(data), max)
	}
	if r.fencedA.Load() {
		return ErrFenced
	}
	if !r.isLeader.Load() {
		l, ok := r.Leader()
		return &NotLeaderError{Leader: l, Known: ok}
	}
	return nil
}

// deliver reports a result for a drained cell and frees it as its protocol
// requires (see submission).
func (r *Replica) deliver(id int32, index uint64, err error) {
	ring := r.ring
	ring.mu.Lock()
	c := &ring.cells[id]
	if c.wait {
		c.done <- proposalResult{index: Index(index), err: err}
		ring.mu.Unlock()
		return
	}
	token := c.token
	ring.release(id)
	ring.mu.Unlock()
	if r.onResult != nil {
		r.onResult(token, Index(index), err)
	}
}

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
	switch OwnerOf(c.ID) {
	case OwnerPullscore:
		r.det.OnCompletion(c)
		return
	case OwnerPermissions:
		r.perms.OnCompletion(c)
		return
	case OwnerConsensus:
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
		p.durable, p.durUnder = 0, 0
		if d, ok := openWord(le.Uint64(h[hdrPersisted:])); ok {
			if u, ok := openWord(le.Uint64(h[hdrPersistedUnder:])); ok {
				p.durable, p.durUnder = d, u
			}
		}
		p.headerAt = r.now
		p.hdrOK = okMin
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

// ---------------------------------------------------------------- apply

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
			if !forEachCommand(v.payload, noCommand) {
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
	if err := r.sm.Restore(Index(idx), data); err != nil {
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
	le.PutUint64(r.region[hdrFlags:], sealWord(flags))
}

// rejectQueued fails proposals that reached a replica that does not lead.
func (r *Replica) rejectQueued() {
	ring := r.ring
	for {
		ring.mu.Lock()
		id, ok := ring.peek()
		if ok {
			ring.pop()
		}
		ring.mu.Unlock()
		if !ok {
			return
		}
		var err error = ErrFenced
		if !r.fenced {
			l, known := r.Leader()
			err = &NotLeaderError{Leader: l, Known: known}
		}
		r.deliver(id, 0, err)
	}
}
