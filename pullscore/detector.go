package pullscore

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/rdmaconsensus/mu/internal/backoff"
	"github.com/rdmaconsensus/mu/quorum"
	"github.com/rdmaconsensus/mu/rdma"
)

// Tag is the value of the top 8 bits of every work-request ID the detector
// posts; the owner routes completions carrying it to OnCompletion.
const Tag = rdma.OwnerPullscore

// MaxNodeID bounds node IDs: the alive bitmap has one bit per ID.
const MaxNodeID = 64

// Health is what a node advertises about itself in its heartbeat word.
type Health uint8

const (
	// Healthy: eligible to lead.
	Healthy Health = iota
	// Degraded: alive but not preferred as leader (fail-slow disk, CE
	// storm); it leads only when no healthy node is alive.
	Degraded
	// Fenced: must not lead. A fenced node stops its heartbeat, so peers
	// also score it down, and advertises Fenced so they skip it at once.
	Fenced
)

func (h Health) String() string {
	switch h {
	case Healthy:
		return "healthy"
	case Degraded:
		return "degraded"
	case Fenced:
		return "fenced"
	}
	return fmt.Sprintf("health(%d)", uint8(h))
}

const (
	// warmupExtraSamples: after its own verdicts settle, a node needs one
	// more sample (plus a read) to see its peers' settled views.
	warmupExtraSamples = 2

	heartbeatWords = 2
	counterBits    = 56
	counterMask    = 1<<counterBits - 1

	idKindShift = rdma.OwnerShift
	idPeerShift = 40
	idPushBit   = 1 << 39 // the work request is a push, not a read
	idSeqMask   = idPushBit - 1
)

// AreaBytes is the size of the own heartbeat area: counter/health word and
// alive-bitmap word, 8-byte aligned.
func AreaBytes() uint64 { return heartbeatWords * 8 }

// ScratchBytes is the size of the local landing area for nPeers peers'
// heartbeats: one area per peer where reads land, then one per peer where
// the peer pushes its own (the inbox).
func ScratchBytes(nPeers int) uint64 { return 2 * uint64(nPeers) * AreaBytes() }

// peer is the detector's state for one peer.
type peer struct {
	id    rdma.NodeID
	score Score
	// lastCounter is the counter seen by the last successful read.
	lastCounter uint64
	health      Health
	standby     bool // advertised: does not stand for leader
	// view is the peer's last read alive bitmap.
	view uint64
	// inflight: a read is outstanding; missed: it has already been
	// counted as a miss at a sample, so its completion only updates the
	// baseline.
	inflight, missed bool
	seq              uint64
	// suspected: declared failed from alive since its last fresh beat.
	suspected bool
	// postNs is when the outstanding read was posted; freshNs when the
	// last read that saw the counter move was, or when a push that moved
	// was found. stalledAtPost and stalledAtFresh are the detector's
	// stalledNs at those times (see staleNs).
	postNs, freshNs               int64
	stalledAtPost, stalledAtFresh int64
	// viewNs is when a push last brought the view and health: a read
	// posted before then may carry older ones under the same counter.
	viewNs int64
	// failedAtNs is when it was last declared failed; regainedIn the
	// sampling interval (Stats.Samples) in which it last regained a point.
	failedAtNs    int64
	regainedIn    uint64
	scratchOffset uint64
	// inboxOffset is where this peer pushes its heartbeat here;
	// pushOffset where this node pushes its own at the peer.
	inboxOffset, pushOffset uint64
	lastPush                uint64 // inbox counter word last looked at
	resets                  backoff.Backoff
}

// Stats counts what the detector did, for status pages and tests.
type Stats struct {
	Samples      uint64 // sampling rounds
	ReadsPosted  uint64
	ReadsFailed  uint64 // completions with an error status, and posts refused
	ReadsLate    uint64 // reads still outstanding at the next sample
	Resets       uint64 // background connections reset after an error
	LeaderChange uint64 // times Leader's answer changed
	// Suspicions counts verdicts turned failed; Retracted those of them
	// whose peer came back with its counter continued (not restarted): it
	// was alive but stalled — a false suspicion unless it was paused.
	Suspicions, Retracted uint64
	Pushes                uint64 // own heartbeat pushed to peers
	// ReaderStalls counts Steps that came later than a period after the
	// previous one (this node was descheduled); ReaderStalledNs is their
	// time beyond the period, which no peer's staleness counts.
	ReaderStalls    uint64
	ReaderStalledNs int64
}

// Detector is one node's pull-score failure detector and leader choice. It
// is not safe for concurrent use: one loop calls Step, OnCompletion and the
// queries.
type Detector struct {
	f        rdma.Fabric
	cfg      Config
	self     rdma.NodeID
	region   []byte
	word     *uint64 // own counter/health word
	hbOffset uint64
	view     *uint64 // own alive bitmap

	counter uint64
	health  Health
	peers   []peer
	// warmupSamples: Leader answers only after this many samples, so that
	// every responsive peer has had the chance to become alive first.
	warmupSamples uint64

	nextSampleNs int64
	started      bool
	// prevStepNs is when Step last ran; stalledNs the sum, over Steps that
	// came more than a period after the previous one, of the excess: the
	// time this node itself was not looking (see staleNs).
	prevStepNs, stalledNs int64
	changed               bool // a verdict changed outside a sample: update
	ad                    adapt
	quiet                 bool // publish does not push (a change of the own health)

	leader    rdma.NodeID
	hasLeader bool

	states  []NodeState // ChooseLeader's input, reused
	voters  uint64      // bit id set when id may lead and vote for a leader; 0 all
	standby bool        // this node does not stand for leader (SetStandby)
	wr      [1]rdma.WorkRequest
	stats   Stats
}

// NewDetector returns a detector for self watching peers. hbOffset and
// scratchOffset are offsets into the local region (the same on every node);
// the areas must be 8-byte aligned, inside the region and disjoint. peers
// must not contain self or duplicates, and every ID must be below
// MaxNodeID. Peers start failed at score FailBelow; see Leader for why.
func NewDetector(f rdma.Fabric, self rdma.NodeID, peers []rdma.NodeID, hbOffset, scratchOffset uint64, cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if f == nil {
		return nil, fmt.Errorf("pullscore: fabric is nil: %w", ErrInvalidConfig)
	}
	if f.Self() != self {
		return nil, fmt.Errorf("pullscore: self = %d but the fabric is node %d: %w", self, f.Self(), ErrInvalidConfig)
	}
	if int(self) >= MaxNodeID {
		return nil, fmt.Errorf("pullscore: self = %d: node IDs must be below %d: %w", self, MaxNodeID, ErrInvalidConfig)
	}
	seen := uint64(1) << self
	for i, p := range peers {
		switch {
		case int(p) >= MaxNodeID:
			return nil, fmt.Errorf("pullscore: peers[%d] = %d: node IDs must be below %d: %w", i, p, MaxNodeID, ErrInvalidConfig)
		case p == self:
			return nil, fmt.Errorf("pullscore: peers[%d] = %d: is self: %w", i, p, ErrInvalidConfig)
		case seen&(1<<p) != 0:
			return nil, fmt.Errorf("pullscore: peers[%d] = %d: duplicate: %w", i, p, ErrInvalidConfig)
		}
		seen |= 1 << p
	}
	region := f.Region().Bytes()
	if err := checkArea("hbOffset", hbOffset, AreaBytes(), region); err != nil {
		return nil, err
	}
	if err := checkArea("scratchOffset", scratchOffset, ScratchBytes(len(peers)), region); err != nil {
		return nil, err
	}
	if hbOffset < scratchOffset+ScratchBytes(len(peers)) && scratchOffset < hbOffset+AreaBytes() {
		return nil, fmt.Errorf("pullscore: hbOffset %d and scratchOffset %d: areas overlap: %w", hbOffset, scratchOffset, ErrInvalidConfig)
	}
	sorted := slices.Clone(peers)
	slices.Sort(sorted)
	d := &Detector{
		f:             f,
		cfg:           cfg,
		self:          self,
		region:        region,
		word:          word(region, hbOffset),
		hbOffset:      hbOffset,
		view:          word(region, hbOffset+8),
		warmupSamples: uint64(cfg.HitsToRecover() + warmupExtraSamples),
		peers:         make([]peer, len(sorted)),
		states:        make([]NodeState, 0, len(sorted)+1),
	}
	inbox := scratchOffset + uint64(len(sorted))*AreaBytes()
	for i, id := range sorted {
		// This node's place in the peer's sorted peer list: the members
		// below self, the peer excluded.
		rank := 0
		for _, o := range sorted {
			if o < self && o != id {
				rank++
			}
		}
		d.peers[i] = peer{
			id:            id,
			score:         NewScore(cfg, cfg.FailBelow, false),
			scratchOffset: scratchOffset + uint64(i)*AreaBytes(),
			inboxOffset:   inbox + uint64(i)*AreaBytes(),
			pushOffset:    inbox + uint64(rank)*AreaBytes(),
		}
	}
	d.ad.refresh(cfg)
	d.publish()
	return d, nil
}

func checkArea(field string, off, n uint64, region []byte) error {
	if off%8 != 0 {
		return fmt.Errorf("pullscore: %s = %d: must be 8-byte aligned: %w", field, off, ErrInvalidConfig)
	}
	if off > uint64(len(region)) || n > uint64(len(region))-off {
		return fmt.Errorf("pullscore: %s = %d: %d bytes do not fit in the %d-byte region: %w", field, off, n, len(region), ErrInvalidConfig)
	}
	if n > 0 && uintptr(unsafe.Pointer(&region[off]))%8 != 0 {
		return fmt.Errorf("pullscore: %s = %d: the region is not 8-byte aligned in memory: %w", field, off, ErrInvalidConfig)
	}
	return nil
}

// word returns the 8-byte word at off in region for atomic access. The
// caller has checked alignment and bounds.
func word(region []byte, off uint64) *uint64 {
	return (*uint64)(unsafe.Pointer(&region[off]))
}

// BackgroundAccess is the access the detector restores when it resets a
// background connection: peers read heartbeats and write permission
// requests and acks through it, and it is never revoked.
const BackgroundAccess = rdma.AccessRemoteRead | rdma.AccessRemoteWrite

// Step does the work due at now: it moves the own counter (unless fenced),
// notes how late it runs (this node's own stall), and when a sample is due
// posts one read of each peer's heartbeat on the background plane (no read
// is stacked on an outstanding one; with fixed steps an outstanding read
// counts as a miss). With derived steps it also looks at the pushed
// heartbeats and judges every live peer's staleness, on every call. A
// background connection found in ERROR is reset, spaced by ResetIntervalNs
// (more if it keeps breaking at once).
// Step returns the absolute time at which it next wants to run.
func (d *Detector) Step(now int64) (nextWakeNs int64) {
	if !d.started {
		d.started = true
		d.nextSampleNs = now
		d.ad.refresh(d.cfg)
	} else if gap := now - d.prevStepNs; gap > d.ad.period {
		// This node was descheduled: what it did not look at is not the
		// peers' silence.
		d.stalledNs += gap - d.ad.period
		d.ad.observeOwnGap(gap)
		d.stats.ReaderStalls++
		d.stats.ReaderStalledNs = d.stalledNs
	}
	d.prevStepNs = now
	if d.health != Fenced {
		d.counter++
		atomic.StoreUint64(d.word, d.heartbeat())
	}
	if d.cfg.Adaptive() {
		// Pushes are looked at on every Step, so a fresh beat is timed
		// to the Step that found it, not to the next sample.
		for i := range d.peers {
			d.takePush(&d.peers[i], now)
		}
	}
	if now >= d.nextSampleNs {
		d.sample(now)
		d.ad.refresh(d.cfg)
		period := d.ad.period
		d.nextSampleNs += period
		if d.nextSampleNs <= now {
			// Step ran late by more than a period: resume the cadence
			// from now instead of bursting the missed samples.
			d.nextSampleNs = now + period
		}
		d.update()
	}
	if d.cfg.Adaptive() && d.judge(now) || d.changed {
		d.update()
	}
	return min(d.nextSampleNs, now+d.cfg.BeatIntervalNs)
}

func (d *Detector) heartbeat() uint64 {
	h := uint64(d.health)
	if d.standby {
		h |= standbyBit
	}
	return h<<counterBits | d.counter&counterMask
}

// standbyBit, in the heartbeat's health byte, says the node does not
// stand for leader (a learner, or a voter whose removal it applied).
const standbyBit = 0x80

// takeHealth reads the health byte of a heartbeat word into p.
func takeHealth(p *peer, w0 uint64) {
	b := w0 >> counterBits
	p.health, p.standby = Health(b&^standbyBit), b&standbyBit != 0
}

func (d *Detector) sample(now int64) {
	d.stats.Samples++
	for i := range d.peers {
		p := &d.peers[i]
		conn := d.f.Conn(p.id, rdma.PlaneBackground)
		pushed := d.takePush(p, now)
		if d.cfg.Adaptive() {
			d.unfresh(p)
		}
		if d.cfg.PushBeats && conn != nil && conn.State() == rdma.ConnReady {
			d.push(p, conn)
		}
		if p.inflight {
			if !p.missed {
				p.missed = true
				d.stats.ReadsLate++
			}
			// The read is late; a push that moved since the last sample
			// is the fresh beat instead (the other direction's queue).
			d.sampleScore(p, pushed)
			if conn != nil && conn.State() == rdma.ConnError {
				d.reset(p, conn, now)
			}
			continue
		}
		if conn == nil {
			d.sampleScore(p, false)
			continue
		}
		if conn.State() == rdma.ConnError {
			d.sampleScore(p, false)
			d.reset(p, conn, now)
			continue
		}
		p.seq++
		d.wr[0] = rdma.WorkRequest{
			ID:           Tag<<idKindShift | uint64(i)<<idPeerShift | p.seq&idSeqMask,
			Op:           rdma.OpRead,
			LocalOffset:  p.scratchOffset,
			RemoteOffset: d.hbOffset,
			Length:       uint32(AreaBytes()),
		}
		if n, err := conn.Post(d.wr[:]); n != 1 || err != nil {
			d.stats.ReadsFailed++
			d.sampleScore(p, false)
			if errors.Is(err, rdma.ErrConnError) {
				d.reset(p, conn, now)
			}
			continue
		}
		d.stats.ReadsPosted++
		p.inflight, p.missed = true, false
		p.postNs, p.stalledAtPost = now, d.stalledNs
	}
}

// takePush reports whether p's pushed counter moved since the last look,
// and takes its health and view from the push when it did.
func (d *Detector) takePush(p *peer, now int64) bool {
	w0 := atomic.LoadUint64(word(d.region, p.inboxOffset))
	if w0 == p.lastPush {
		return false
	}
	first := p.lastPush == 0
	p.lastPush = w0
	if first {
		return false // a word found at boot may be a previous run's
	}
	counter := w0 & counterMask
	if !d.advance(p, counter) {
		return false
	}
	takeHealth(p, w0)
	p.view = atomic.LoadUint64(word(d.region, p.inboxOffset+8))
	p.viewNs = now
	d.fresh(p, now, now, d.stalledNs)
	return true
}

// push writes the own heartbeat area into p's inbox, unsignaled: it is
// evidence for p that does not share the queue of p's reads of this node,
// so one slow read alone does not stall p's view of this node.
func (d *Detector) push(p *peer, conn rdma.Conn) {
	d.wr[0] = rdma.WorkRequest{
		ID:           Tag<<idKindShift | uint64(p.index(d))<<idPeerShift | idPushBit,
		Op:           rdma.OpWrite,
		LocalOffset:  d.hbOffset,
		RemoteOffset: p.pushOffset,
		Length:       uint32(AreaBytes()),
		Unsignaled:   true,
	}
	if n, err := conn.Post(d.wr[:]); n == 1 && err == nil {
		d.stats.Pushes++
	}
}

func (p *peer) index(d *Detector) int {
	return int((uintptr(unsafe.Pointer(p)) - uintptr(unsafe.Pointer(&d.peers[0]))) / unsafe.Sizeof(*p))
}

// restartSlack: a counter this far below the last one seen comes from a
// restarted peer (counting from 1 again), not from a read served before a
// push that already carried a later beat.
const restartSlack = 1 << 20

// advance takes counter as p's latest beat if it is newer than the last
// one seen (by a read or a push) and reports whether it moved.
func (d *Detector) advance(p *peer, counter uint64) bool {
	switch {
	case counter > p.lastCounter:
	case counter+restartSlack < p.lastCounter:
		p.suspected = false // restarted: not a wrong suspicion
	default:
		return false
	}
	p.lastCounter = counter
	return true
}

// fresh records a fresh beat of p (counter moved) evidenced at atNs (when
// the detector's stalledNs was stalledAt) and learnt at now.
func (d *Detector) fresh(p *peer, atNs, now, stalledAt int64) {
	alive := p.score.Alive()
	if !alive && p.suspected {
		d.stats.Retracted++ // it kept counting: it was stalled, not gone
	}
	// The gap is the staleness p reached before this beat was learnt,
	// what judge compares with the bound. Gaps of live peers measure the
	// bound; so do the gap of a wrong suspicion, so that the bound learns
	// to cover it, and those of a failed peer between beats seen since it
	// failed (at boot: since its first). The gap across a failure (a
	// restart) measures nothing.
	if p.freshNs != 0 && (alive || p.suspected || p.freshNs > p.failedAtNs) && atNs > p.freshNs {
		d.ad.observeGap(d.staleNs(p, now))
	}
	if atNs > p.freshNs {
		p.freshNs, p.stalledAtFresh = atNs, stalledAt
	}
	p.suspected = false
	switch {
	case !d.cfg.Adaptive():
	case alive:
		// A live peer's score is its staleness (judge): a fresh beat
		// makes it whole.
		p.score.ObserveStep(true, d.cfg.ScoreMax, 0)
	default:
		d.regain(p)
	}
}

// reset cycles a background connection found in ERROR, spaced out by
// backoff because a Reset costs hundreds of microseconds on rxe. An outstanding
// read is flushed by the reset; bumping seq makes its completion stale.
func (d *Detector) reset(p *peer, conn rdma.Conn, now int64) {
	if !p.resets.Broken(now) {
		return
	}
	p.resets.Record(now, d.cfg.ResetIntervalNs)
	d.stats.Resets++
	_ = conn.Reset(BackgroundAccess) // on failure the next sample retries
	p.inflight, p.missed = false, false
	p.seq++
}

// OnCompletion takes a completion whose ID carries Tag; others are ignored,
// as are completions of reads the detector no longer waits for.
func (d *Detector) OnCompletion(c rdma.Completion) {
	if c.ID>>idKindShift != Tag || c.ID&idPushBit != 0 {
		return // a failed push: the next sample finds the connection in ERROR
	}
	i := int(c.ID >> idPeerShift & 0xff)
	if i >= len(d.peers) {
		return
	}
	p := &d.peers[i]
	if !p.inflight || c.ID&idSeqMask != p.seq&idSeqMask {
		return
	}
	p.inflight = false
	scored := !p.missed
	if c.Status != rdma.StatusSuccess {
		d.stats.ReadsFailed++
		if scored && !d.cfg.Adaptive() {
			d.observe(p, false)
			d.update()
		}
		return
	}
	now := d.f.Now()
	d.ad.observeRTT(now - p.postNs)
	w0 := atomic.LoadUint64(word(d.region, p.scratchOffset))
	counter := w0 & counterMask
	advanced := d.advance(p, counter)
	if advanced {
		d.fresh(p, p.postNs, now, p.stalledAtPost)
	}
	// A push may have carried this beat first: the peer is fresh if
	// anything showed it moving since this read was posted.
	moved := advanced || p.freshNs >= p.postNs
	if advanced || counter == p.lastCounter && p.postNs >= p.viewNs {
		// Not a view older than one a push brought: it would undo a
		// newer one (a peer that just suspected the leader would seem
		// to see it again, and a candidate counting on that peer's
		// view stepped down mid-election). The peer moves its counter
		// at the start of its Step and publishes a changed view later
		// in it, so a read served in between carries the counter of
		// the push that follows with the view before it; a read posted
		// after that push was taken was served after it.
		takeHealth(p, w0)
		p.view = atomic.LoadUint64(word(d.region, p.scratchOffset+8))
	}
	if scored {
		d.sampleScore(p, moved)
	}
	d.update()
}

// sampleScore scores one sample of p with fixed steps; with derived steps
// the score follows p's staleness instead (judge, regain).
func (d *Detector) sampleScore(p *peer, moved bool) {
	if !d.cfg.Adaptive() {
		d.observe(p, moved)
	}
}

// observe scores one sample of p with the fixed steps.
func (d *Detector) observe(p *peer, moved bool) {
	alive := p.score.Alive()
	if p.score.ObserveStep(moved, d.cfg.upStep(), d.cfg.DownStep) && alive {
		d.stats.Suspicions++
		p.suspected = true
	}
}

// PeriodNs is the sampling period in use.
func (d *Detector) PeriodNs() int64 { return d.ad.period }

// FailBoundNs is the time without a fresh beat after which a live peer is
// declared failed: with derived steps the measured bound (on this node's
// clock, less the time this node was descheduled); with fixed ones the
// misses that fail a peer at ScoreMax, times the period.
func (d *Detector) FailBoundNs() int64 {
	if d.cfg.Adaptive() {
		return d.ad.bound
	}
	return int64(d.cfg.MissesToFail()) * d.ad.period
}

// ReadRTTNs is the smoothed heartbeat-read round trip (0 before the first).
func (d *Detector) ReadRTTNs() int64 { return d.ad.srttNs }

// update republishes the own alive bitmap and recomputes the leader.
func (d *Detector) update() {
	d.changed = false
	d.publish()
	l, ok := d.computeLeader()
	if l != d.leader || ok != d.hasLeader {
		d.leader, d.hasLeader = l, ok
		d.stats.LeaderChange++
	}
}

func (d *Detector) publish() {
	v := d.ownView()
	if v == atomic.LoadUint64(d.view) {
		return
	}
	atomic.StoreUint64(d.view, v)
	if !d.started || !d.cfg.PushBeats || d.quiet {
		return
	}
	// A changed view is pushed at once: it is the second opinion the
	// peers wait for before they move the leadership.
	for i := range d.peers {
		p := &d.peers[i]
		if conn := d.f.Conn(p.id, rdma.PlaneBackground); conn != nil && conn.State() == rdma.ConnReady {
			d.push(p, conn)
		}
	}
}

// ownView is the bitmap of the nodes this node sees alive and not fenced.
func (d *Detector) ownView() uint64 {
	var v uint64
	if d.health != Fenced {
		v |= 1 << d.self
	}
	for i := range d.peers {
		p := &d.peers[i]
		if p.score.Alive() && p.health != Fenced {
			v |= 1 << p.id
		}
	}
	return v
}

// computeLeader implements Leader over the detector's state.
func (d *Detector) computeLeader() (rdma.NodeID, bool) {
	if d.stats.Samples < d.warmupSamples {
		return 0, false
	}
	own := d.ownView()
	st := d.states[:0]
	// The own view is always current, so self is Seen even when fenced
	// (Health keeps a fenced self from being chosen).
	self := NodeState{ID: d.self, Health: d.health, Seen: true, View: own, Standby: d.standby}
	selfDone := false
	for i := range d.peers {
		p := &d.peers[i]
		if !selfDone && d.self < p.id {
			st = d.appendVoter(st, self)
			selfDone = true
		}
		st = d.appendVoter(st, NodeState{ID: p.id, Health: p.health, Seen: p.score.Alive(), View: p.view, Standby: p.standby})
	}
	if !selfDone {
		st = d.appendVoter(st, self)
	}
	return ChooseLeader(st)
}

// appendVoter appends s unless a voter set excludes it: a learner neither
// leads nor counts toward anyone's majority.
func (d *Detector) appendVoter(st []NodeState, s NodeState) []NodeState {
	if d.voters != 0 && d.voters&(1<<s.ID) == 0 {
		return st
	}
	return append(st, s)
}

// SetStandby makes this node advertise that it does not stand for leader,
// so peers whose voter set is older than its own do not wait for it.
func (d *Detector) SetStandby(on bool) {
	if on != d.standby {
		d.standby = on
		if d.health != Fenced {
			atomic.StoreUint64(d.word, d.heartbeat())
		}
		d.update()
	}
}

// SetVoters restricts leader choice to the members whose bit (1<<id) is
// set in ids, and counts only their views (0: every member). The
// consensus core sets it from its configuration.
func (d *Detector) SetVoters(ids uint64) {
	if ids != d.voters {
		d.voters = ids
		d.update()
	}
}

// NodeState is what a node knows about one cluster member (itself
// included) when it chooses a leader.
type NodeState struct {
	ID     rdma.NodeID
	Health Health // last advertised
	// Seen: alive in the local node's own verdict (always true for self,
	// whose own view is current).
	Seen bool
	// View is the member's alive bitmap (bit id set when it sees id alive
	// and not fenced); used only when Seen, for a view not seen fresh
	// cannot be trusted.
	View uint64
	// Standby: it does not stand for leader (it applied its own removal
	// from the voters, which this node may not know yet); it still votes.
	Standby bool
}

// ChooseLeader picks the leader from the states of every member (sorted by
// ID, self included). A member X is supported when at least a majority of
// the members vote for it: each Seen member whose View contains X votes,
// and X votes for itself when it is not Seen (its view cannot be read, but
// a live node always sees itself). The leader is the lowest supported
// Healthy member, else the lowest supported Degraded one; Fenced and
// Standby members never lead.
//
// Counting others' views instead of the local verdict alone is what makes
// nodes agree under partial connectivity: with A–B cut and both reaching
// C, B does not see A but C's view does, so B also names A, and nobody
// ping-pongs. A node in a minority partition gets no majority for anyone
// and answers false instead of naming itself.
func ChooseLeader(states []NodeState) (rdma.NodeID, bool) {
	majority := quorum.Majority(len(states))
	degraded, degradedOK := rdma.NodeID(0), false
	for _, x := range states {
		if x.Health == Fenced || x.Standby || x.Health == Degraded && degradedOK {
			continue
		}
		bit := uint64(1) << x.ID
		votes := 0
		if !x.Seen {
			votes++
		}
		for _, v := range states {
			if v.Seen && v.View&bit != 0 {
				votes++
			}
		}
		if votes < majority {
			continue
		}
		if x.Health == Healthy {
			return x.ID, true
		}
		degraded, degradedOK = x.ID, true
	}
	return degraded, degradedOK
}

// Leader returns the node that should lead: the lowest-id node that a
// majority sees alive and that is healthy, or, when no healthy node
// qualifies, the lowest-id degraded one; fenced nodes never qualify. Self
// counts as alive unless fenced.
//
// Boot: peers start failed (score FailBelow), and Leader answers false
// until HitsToRecover+2 samples have been taken (280 µs with the
// defaults): enough for every responsive peer to become alive here and for
// this node to read the peers' settled views.
// Starting peers alive would name a dead peer leader at boot; starting them
// failed without the warm-up would make every node name itself leader until
// its peers recover. With the warm-up, every responsive peer is alive by
// the first answer, so the first answer is the steady one.
func (d *Detector) Leader() (rdma.NodeID, bool) { return d.leader, d.hasLeader }

func (d *Detector) find(id rdma.NodeID) *peer {
	for i := range d.peers {
		if d.peers[i].id == id {
			return &d.peers[i]
		}
	}
	return nil
}

// Alive reports this node's own verdict on id: for a peer, its score's
// verdict; for self, true unless fenced. Unknown IDs are not alive.
func (d *Detector) Alive(id rdma.NodeID) bool {
	if id == d.self {
		return d.health != Fenced
	}
	if p := d.find(id); p != nil {
		return p.score.Alive()
	}
	return false
}

// Score is id's current score, ScoreMax for self (0 when fenced), and -1
// for an unknown ID.
func (d *Detector) Score(id rdma.NodeID) int {
	if id == d.self {
		if d.health == Fenced {
			return 0
		}
		return d.cfg.ScoreMax
	}
	if p := d.find(id); p != nil {
		return p.score.Value()
	}
	return -1
}

// PeerHealth is the health id advertised in its last successfully read
// heartbeat (Healthy before the first read), or the own health for self.
func (d *Detector) PeerHealth(id rdma.NodeID) Health {
	if id == d.self {
		return d.health
	}
	if p := d.find(id); p != nil {
		return p.health
	}
	return Healthy
}

// Health is the own advertised health.
func (d *Detector) Health() Health { return d.health }

// SetHealth sets the health this node advertises. Fenced stops the
// counter, so peers also score this node down, and advertises Fenced in the
// same word, so they skip it as leader with their next read; setting
// another health again restarts the beat.
func (d *Detector) SetHealth(h Health) {
	d.health = h
	atomic.StoreUint64(d.word, d.heartbeat())
	// Not pushed at once: a leader that fences or degrades itself stops
	// writing at its next Step, and peers that learnt it sooner would ask
	// for permission while its last writes are in flight; a grantor
	// refusing one pays a connection Reset (540 µs on rxe).
	d.quiet = true
	d.update()
	d.quiet = false
}

// Stats returns the counters.
func (d *Detector) Stats() Stats { return d.stats }

// Config returns the configuration in use.
func (d *Detector) Config() Config { return d.cfg }
