package consensus

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rdmaconsensus/mu/hwmon/failslow"
	"github.com/rdmaconsensus/mu/permissions"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/quorum"
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

	// reads (read.go): the ring from callers, the FIFO of reads taken by
	// the driver and waiting for confirmation or apply, the lowest index a
	// read needs this term (the end of its recovery), the lease
	reads           *readRing
	onRead          ResultFunc
	pending         []int32
	pHead, pLen     int
	readFloor       uint64
	readFloorA      atomic.Uint64
	selfConfirmedAt int64
	leaseUntil      int64 // fabric clock; 0 none
	leaseUntilA     atomic.Int64
	scratchLease    []uint64

	// leadership transfer (transfer.go): the leader's transfer under
	// way, requests from callers, and the target's side
	xfer         transfer
	xferReq      atomic.Uint64 // gen<<8 | member+1; 0 none
	xferGen      atomic.Uint64
	xferAbort    atomic.Uint64 // gen of an abandoned transfer
	xferDone     chan xferResult
	onTransfer   TransferHandler
	handoverSeen uint64 // last handover word acted on
	takingOver   bool   // a candidate started by a handover

	// membership (membership.go): the voters the committed prefix names,
	// the leader's change under way, requests from callers
	mem       membership
	votersA   atomic.Uint32 // mem.latest(), for callers
	votersSet bool          // the detector was told
	conf      confChange
	confReq   atomic.Uint64 // gen<<8 | 0x80 if add | member+1; 0 none
	confGen   atomic.Uint64
	confDone  chan confResult
	onConf    ConfChangeHandler

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
	r.q = quorum.Majority(r.n)
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
	r.reads = newReadRing(cfg.SubmitQueue)
	r.xferDone = make(chan xferResult, 1)
	r.confDone = make(chan confResult, 1)
	r.mem.base = voterSet(1<<uint(r.n) - 1)
	if len(cfg.Voters) > 0 {
		r.mem.base = 0
		for i, id := range cfg.Members {
			if slices.Contains(cfg.Voters, id) {
				r.mem.base |= 1 << uint(i)
			}
		}
	}
	r.pending = make([]int32, cfg.SubmitQueue)
	r.scratchLease = make([]uint64, r.n)
	r.ra, _ = sm.(ResultApplier)
	r.waiters = make([]waiter, cfg.SubmitQueue)
	r.next = 1
	r.scanPos = 1

	// Header and log start clean: a restarted replica has lost its log and
	// says so (flagRejoining) until a leader catches it up.
	clear(region[:headerBytes])
	clear(region[lay.SnapshotOffset : lay.SnapshotOffset+snapHeaderBytes])
	clear(region[lay.HandoverOffset : lay.HandoverOffset+cacheLineBytes])
	clear(region[lay.LogOffset : lay.LogOffset+lay.LogSlots*lay.SlotStrideBytes])
	r.rejoining = cfg.Rejoining
	if cfg.Durability != DurabilityMemory {
		r.js = newJournal(&cfg, &lay)
		voter, damaged, err := r.restoreJournal()
		if err != nil {
			return nil, err
		}
		r.admitJournal(voter, damaged)
	}
	r.publishHeader()
	r.publishVoters()
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
		r.stepDown(StepDownFenced)
	}
}

func (r *Replica) setHealth(h Health) {
	if r.health == h && h != HealthHealthy {
		return
	}
	r.health = h
	r.det.SetHealth(h)
}
