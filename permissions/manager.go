package permissions

import (
	"fmt"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/rdmaconsensus/mu/internal/backoff"
	"github.com/rdmaconsensus/mu/quorum"
	"github.com/rdmaconsensus/mu/rdma"
)

// Tag is the value of the top 8 bits of every work-request ID the Manager
// posts; the owner routes completions carrying it to OnCompletion.
const Tag = rdma.OwnerPermissions

// MaxEpoch is the largest epoch a request word can carry (48 bits).
const MaxEpoch = 1<<48 - 1

// ReadAccess is what every peer that does not hold the permission may do
// on the local region over the replication plane: read (a new leader reads
// min_proposal and the slot at FUO before it is granted write).
const ReadAccess = rdma.AccessRemoteRead

// LeaderAccess is what the permission holder may do.
const LeaderAccess = rdma.AccessRemoteRead | rdma.AccessRemoteWrite

const (
	idKindShift  = rdma.OwnerShift
	idOpShift    = 48
	idPeerShift  = 40
	idEpochMask  = 1<<idPeerShift - 1
	opRequest    = 1
	opAck        = 2
	requesterBit = 16
)

// Word is the 8-byte request/ack word: epoch in the high 48 bits, the
// requester's ID in the low 16. Zero means "no request".
func Word(epoch uint64, requester rdma.NodeID) uint64 {
	return epoch<<requesterBit | uint64(requester)
}

// DecodeWord splits a request/ack word.
func DecodeWord(w uint64) (epoch uint64, requester rdma.NodeID) {
	return w >> requesterBit, rdma.NodeID(w)
}

// Majority is the quorum size of an nNodes cluster.
func Majority(nNodes int) int { return quorum.Majority(nNodes) }

// AreaBytes is the size of a node's permission area in an nNodes cluster.
// Members are indexed by their position in the sorted member list (every
// node must be configured with the same members). Layout, in 8-byte words:
//
//	[0, n)        request slot of member i, written by member i
//	[n, 2n)       ack slot of member i, written by member i (it echoes the
//	              request word it granted)
//	2n            source of the own outgoing request word
//	[2n+1, 3n+1)  source of the own outgoing ack to member i
//
// Each slot has a single writer and is written with one 8-byte RDMA write,
// which lands atomically; the owner reads slots with atomic loads. Writes on
// one connection land in posting order, so a slot only ever moves to a
// newer word of its writer.
func AreaBytes(nNodes int) uint64 { return uint64(3*nNodes+1) * 8 }

// Manager serves permission requests for the local log and makes the local
// node's own requests. It is not safe for concurrent use.
type Manager struct {
	f       rdma.Fabric
	cfg     Config
	self    rdma.NodeID
	selfIdx int
	members []rdma.NodeID // sorted, self included
	region  []byte
	area    uint64

	// intended is the replication-plane access each member should have.
	intended []rdma.Access
	holder   rdma.NodeID
	held     bool

	lastSeen []uint64 // request slot words already handled
	repairs  []backoff.Backoff
	retryReq []bool // request write to member failed: resend
	retryAck []bool // ack write to member failed: resend
	// ackHeld: the grant to member is decided but some other member's
	// connection still allows remote write; ack once it no longer does.
	ackHeld []bool

	epoch      uint64
	requesting bool
	// yielded is the latest own epoch given up by granting another node
	// after it: acks of it, or of an earlier epoch, no longer count.
	yielded    uint64
	deadlineNs int64

	wr    [1]rdma.WorkRequest
	stats Stats
}

// New returns a Manager for self. peers are the other members; areaOffset
// is the permission area in the local region (the same on every node),
// AreaBytes(len(peers)+1) bytes, 8-byte aligned. Request slots already
// non-zero at New are treated as handled, so a restart never re-serves an
// old request. Initially nobody holds the permission: every peer's
// intended replication access is ReadAccess, applied by the first Step.
func New(f rdma.Fabric, self rdma.NodeID, peers []rdma.NodeID, areaOffset uint64, cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if f == nil {
		return nil, fmt.Errorf("permissions: fabric is nil: %w", ErrInvalidConfig)
	}
	if f.Self() != self {
		return nil, fmt.Errorf("permissions: self = %d but the fabric is node %d: %w", self, f.Self(), ErrInvalidConfig)
	}
	members := append(slices.Clone(peers), self)
	slices.Sort(members)
	for i := 1; i < len(members); i++ {
		if members[i] == members[i-1] {
			return nil, fmt.Errorf("permissions: peers: node %d appears twice (or is self): %w", members[i], ErrInvalidConfig)
		}
	}
	n := len(members)
	region := f.Region().Bytes()
	size := AreaBytes(n)
	switch {
	case areaOffset%8 != 0:
		return nil, fmt.Errorf("permissions: areaOffset = %d: must be 8-byte aligned: %w", areaOffset, ErrInvalidConfig)
	case areaOffset > uint64(len(region)) || size > uint64(len(region))-areaOffset:
		return nil, fmt.Errorf("permissions: areaOffset = %d: %d bytes do not fit in the %d-byte region: %w", areaOffset, size, len(region), ErrInvalidConfig)
	case uintptr(unsafe.Pointer(&region[areaOffset]))%8 != 0:
		return nil, fmt.Errorf("permissions: areaOffset = %d: the region is not 8-byte aligned in memory: %w", areaOffset, ErrInvalidConfig)
	}
	m := &Manager{
		f:        f,
		cfg:      cfg,
		self:     self,
		selfIdx:  slices.Index(members, self),
		members:  members,
		region:   region,
		area:     areaOffset,
		intended: make([]rdma.Access, n),
		lastSeen: make([]uint64, n),
		repairs:  make([]backoff.Backoff, n),
		retryReq: make([]bool, n),
		retryAck: make([]bool, n),
		ackHeld:  make([]bool, n),
	}
	for i := range members {
		m.intended[i] = ReadAccess
		m.lastSeen[i] = atomic.LoadUint64(m.word(m.reqSlot(i)))
	}
	return m, nil
}

func (m *Manager) word(off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&m.region[off])) }

// Offsets inside the area (relative to the region), per the AreaBytes layout.
func (m *Manager) reqSlot(i int) uint64 { return m.area + uint64(i)*8 }
func (m *Manager) ackSlot(i int) uint64 { return m.area + uint64(len(m.members)+i)*8 }
func (m *Manager) reqSource() uint64    { return m.area + uint64(2*len(m.members))*8 }
func (m *Manager) ackSource(i int) uint64 {
	return m.area + uint64(2*len(m.members)+1+i)*8
}

// Majority is this cluster's quorum size.
func (m *Manager) Majority() int { return Majority(len(m.members)) }

// Request makes the local node a candidate leader: it writes a request word
// with a new epoch into every peer's area over the background plane, and
// revokes remote write on all its own replication connections (nobody
// writes the leader's log). Epochs are unique and increasing per requester:
// max(previous+1, now/1024), so they also increase across a restart of the
// requester on the same clock. The caller proceeds once HasMajority(epoch).
// Requests not acknowledged are resent by Step every RequestTimeoutNs until
// the next Request, Abandon, or a grant to another node.
func (m *Manager) Request(now int64) (epoch uint64) {
	m.epoch = min(max(m.epoch+1, uint64(max(now, 0))>>10), MaxEpoch)
	atomic.StoreUint64(m.word(m.reqSource()), Word(m.epoch, m.self))
	m.requesting = true
	m.deadlineNs = now + m.cfg.RequestTimeoutNs
	// Send first, revoke after: the peers' switches (two access changes
	// each) then overlap with the own one. The caller sees only the state
	// after both, and no ack can arrive before the own revocation is done.
	for i := range m.members {
		if i != m.selfIdx {
			m.sendRequest(i)
		}
	}
	for i := range m.intended {
		m.intended[i] = ReadAccess
	}
	m.holder, m.held = m.self, true
	m.switchAccess(m.self, m.epoch, -1)
	return m.epoch
}

// Abandon stops resending the current request (the node no longer wants to
// lead). Permission already granted by peers stays until they grant another.
func (m *Manager) Abandon() { m.requesting = false }

// Epoch is the epoch of the latest own request (0 before any).
func (m *Manager) Epoch() uint64 { return m.epoch }

// Requesting reports whether the latest own request is still being pursued.
func (m *Manager) Requesting() bool { return m.requesting }

// Granted is how many peers (self excluded) have acknowledged the own
// request of this epoch. An ack means the peer has already switched its
// replication connections: this node may write its log, and no other may.
// Once this node grants another node's request, its own earlier epochs
// count no grants (it has yielded; a leader must stop): Granted is 0.
func (m *Manager) Granted(epoch uint64) int {
	if epoch == 0 || epoch <= m.yielded {
		return 0
	}
	want := Word(epoch, m.self)
	n := 0
	for i := range m.members {
		if i != m.selfIdx && atomic.LoadUint64(m.word(m.ackSlot(i))) == want {
			n++
		}
	}
	return n
}

// GrantedBy reports whether peer has acknowledged the own request of epoch
// and this node has not yielded it since (see Granted).
func (m *Manager) GrantedBy(peer rdma.NodeID, epoch uint64) bool {
	if epoch == 0 || epoch <= m.yielded {
		return false
	}
	i := slices.Index(m.members, peer)
	return i >= 0 && i != m.selfIdx && atomic.LoadUint64(m.word(m.ackSlot(i))) == Word(epoch, m.self)
}

// HasMajority reports whether a majority, counting self, has granted epoch:
// Granted(epoch)+1 >= Majority().
func (m *Manager) HasMajority(epoch uint64) bool {
	return epoch != 0 && epoch > m.yielded && m.Granted(epoch)+1 >= m.Majority()
}

// Yielded reports whether this node has granted another node's request
// after its own request of epoch: it has lost the leadership of that
// epoch, and a leader must step down and stop writing its own log.
func (m *Manager) Yielded(epoch uint64) bool { return epoch <= m.yielded }

// Holder is who may write the local log: the last node whose request this
// node granted, or self after its own Request; false before any. A node
// that leads must check it (or Yielded) after every Step: when it is no
// longer self, another node may now write this log, so the old leader must
// stop at once, including its local writes to its own log.
func (m *Manager) Holder() (rdma.NodeID, bool) { return m.holder, m.held }

// IntendedAccess is the replication-plane access peer should have now.
func (m *Manager) IntendedAccess(peer rdma.NodeID) rdma.Access {
	if i := slices.Index(m.members, peer); i >= 0 && i != m.selfIdx {
		return m.intended[i]
	}
	return rdma.AccessNone
}

// Stats returns the accumulated counts and timings.
func (m *Manager) Stats() Stats { return m.stats }

// Config returns the configuration in use.
func (m *Manager) Config() Config { return m.cfg }

// Step does the work due at now: it serves the newest incoming request
// (switching the local replication connections, then acknowledging), resends
// own requests and failed acks, and repairs replication connections found
// in ERROR or not at their intended access. It returns when it next wants
// to run.
func (m *Manager) Step(now int64) (nextWakeNs int64) {
	m.serve(now)
	m.repair(now)
	m.retry(now)
	return now + m.cfg.PollIntervalNs
}

// serve grants the newest request that appeared since the last Step.
// When several requesters wrote since then, only the highest epoch is
// granted; the others are superseded and not acknowledged.
func (m *Manager) serve(now int64) {
	winner, winnerWord := -1, uint64(0)
	for i := range m.members {
		if i == m.selfIdx {
			continue
		}
		w := atomic.LoadUint64(m.word(m.reqSlot(i)))
		if w == m.lastSeen[i] {
			continue
		}
		m.lastSeen[i] = w
		epoch, requester := DecodeWord(w)
		if w == 0 || requester != m.members[i] {
			continue // not a well-formed request of member i
		}
		if winner >= 0 {
			m.stats.RequestsSuperseded++
			if we, _ := DecodeWord(winnerWord); epoch <= we {
				continue
			}
		}
		winner, winnerWord = i, w
	}
	if winner < 0 {
		return
	}
	for i := range m.intended {
		m.intended[i] = ReadAccess
	}
	m.intended[winner] = LeaderAccess
	m.holder, m.held = m.members[winner], true
	m.requesting = false
	m.yielded = m.epoch
	epoch, _ := DecodeWord(winnerWord)
	m.switchAccess(m.members[winner], epoch, winner)
	m.stats.RequestsServed++
	atomic.StoreUint64(m.word(m.ackSource(winner)), winnerWord)
	clear(m.ackHeld)
	clear(m.retryAck)
	if !m.othersRevoked(winner) {
		// Acking now would let the requester count a grant while
		// another node can still write this log. repair keeps trying
		// to revoke; retry acks once it has.
		m.ackHeld[winner] = true
		m.stats.AcksHeld++
		return
	}
	m.sendAck(winner)
}

// othersRevoked reports whether no member but grantee can write the local
// log: every other replication connection is missing, not ready (a
// connection in ERROR carries nothing until this node resets it, and it
// resets to the intended access), or lacks remote write.
func (m *Manager) othersRevoked(grantee int) bool {
	for i := range m.members {
		if i == m.selfIdx || i == grantee {
			continue
		}
		c := m.f.Conn(m.members[i], rdma.PlaneReplication)
		if c != nil && c.State() == rdma.ConnReady && c.RemoteAccess()&rdma.AccessRemoteWrite != 0 {
			return false
		}
	}
	return true
}

// switchAccess applies the intended access to every replication
// connection, revoking before granting (grantee, if >= 0, goes last), and
// records the switch.
func (m *Manager) switchAccess(requester rdma.NodeID, epoch uint64, grantee int) {
	start := m.f.Now()
	sw := Switch{AtNs: start, Requester: requester, Epoch: epoch}
	for i := range m.members {
		if i != m.selfIdx && i != grantee {
			m.apply(i, &sw)
		}
	}
	if grantee >= 0 {
		m.apply(grantee, &sw)
	}
	sw.DurationNs = m.f.Now() - start
	sw.FastPath = sw.Resets == 0 && sw.Failures == 0
	m.stats.Switches++
	switch {
	case sw.Failures > 0:
		m.stats.Incomplete++
	case sw.Resets > 0:
		m.stats.Fallback++
	default:
		m.stats.FastPath++
	}
	m.stats.LastSwitchNs = sw.DurationNs
	m.stats.MaxSwitchNs = max(m.stats.MaxSwitchNs, sw.DurationNs)
	m.stats.TotalSwitchNs += sw.DurationNs
	if m.cfg.OnSwitch != nil {
		m.cfg.OnSwitch(sw)
	}
}

// apply sets member i's connection to its intended access: fast path
// SetRemoteAccess, fallback Reset when that fails or the connection is in
// ERROR.
func (m *Manager) apply(i int, sw *Switch) {
	c := m.f.Conn(m.members[i], rdma.PlaneReplication)
	if c == nil {
		sw.Failures++
		return
	}
	want := m.intended[i]
	if c.State() != rdma.ConnError {
		if c.RemoteAccess() == want || c.SetRemoteAccess(want) == nil {
			return
		}
	}
	if err := c.Reset(want); err != nil {
		sw.Failures++
		return
	}
	sw.Resets++
}

func (m *Manager) sendRequest(i int) {
	m.retryReq[i] = !m.post(i, opRequest, m.reqSource(), m.reqSlot(m.selfIdx))
	if !m.retryReq[i] {
		m.stats.RequestsSent++
	}
}

func (m *Manager) sendAck(i int) {
	m.retryAck[i] = !m.post(i, opAck, m.ackSource(i), m.ackSlot(m.selfIdx))
	if !m.retryAck[i] {
		m.stats.AcksSent++
	}
}

// post writes one 8-byte word from the local area to the same area at
// member i over the background plane.
func (m *Manager) post(i int, op uint64, local, remote uint64) bool {
	c := m.f.Conn(m.members[i], rdma.PlaneBackground)
	if c == nil || c.State() != rdma.ConnReady {
		return false
	}
	epoch, _ := DecodeWord(atomic.LoadUint64(m.word(local)))
	m.wr[0] = rdma.WorkRequest{
		ID:           Tag<<idKindShift | op<<idOpShift | uint64(i)<<idPeerShift | epoch&idEpochMask,
		Op:           rdma.OpWrite,
		LocalOffset:  local,
		RemoteOffset: remote,
		Length:       8,
	}
	n, err := c.Post(m.wr[:])
	if err != nil || n != 1 {
		m.stats.WritesFailed++
		return false
	}
	return true
}

// retry resends failed acks at once (when the connection is back) and
// resends the own request to peers that have not acknowledged it, on
// failure or every RequestTimeoutNs.
func (m *Manager) retry(now int64) {
	timedOut := m.requesting && now >= m.deadlineNs
	if timedOut {
		m.deadlineNs = now + m.cfg.RequestTimeoutNs
	}
	want := Word(m.epoch, m.self)
	for i := range m.members {
		if i == m.selfIdx {
			continue
		}
		if m.ackHeld[i] && m.othersRevoked(i) {
			m.ackHeld[i] = false
			m.sendAck(i)
		} else if m.retryAck[i] {
			m.sendAck(i)
		}
		if m.requesting && (timedOut || m.retryReq[i]) && atomic.LoadUint64(m.word(m.ackSlot(i))) != want {
			m.sendRequest(i)
		}
	}
}

// repair brings replication connections found in ERROR, or at an access
// other than intended (a switch that failed half-way), back to the intended
// access, spaced out per connection by backoff from RepairIntervalNs.
func (m *Manager) repair(now int64) {
	for i := range m.members {
		if i == m.selfIdx {
			continue
		}
		c := m.f.Conn(m.members[i], rdma.PlaneReplication)
		if c == nil {
			continue
		}
		want := m.intended[i]
		inError := c.State() == rdma.ConnError
		if !inError && c.RemoteAccess() == want || !m.repairs[i].Broken(now) {
			continue
		}
		m.repairs[i].Record(now, m.cfg.RepairIntervalNs)
		if !inError && c.SetRemoteAccess(want) == nil {
			continue
		}
		m.stats.Repairs++
		if c.Reset(want) != nil {
			m.stats.RepairsFailed++
		}
	}
}

// OnCompletion takes a completion whose ID carries Tag; others are ignored.
// A failed request or ack write is resent by a later Step.
func (m *Manager) OnCompletion(c rdma.Completion) {
	if c.ID>>idKindShift != Tag || c.Status == rdma.StatusSuccess {
		return
	}
	i := int(c.ID >> idPeerShift & 0xff)
	if i >= len(m.members) || i == m.selfIdx {
		return
	}
	m.stats.WritesFailed++
	epoch := c.ID & idEpochMask
	switch c.ID >> idOpShift & 0xff {
	case opRequest:
		if m.requesting && epoch == m.epoch&idEpochMask {
			m.retryReq[i] = true
		}
	case opAck:
		if w, _ := DecodeWord(atomic.LoadUint64(m.word(m.ackSource(i)))); w&idEpochMask == epoch {
			m.retryAck[i] = true
		}
	}
}
