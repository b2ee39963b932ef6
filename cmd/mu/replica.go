package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdmaconsensus/mu/appliedlog"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/examples/orderbook/rsm"
	"github.com/rdmaconsensus/mu/permissions"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
)

// appliedEntry is one command as a replica applied it.
type appliedEntry = appliedlog.Entry

// bookSM is the replicated order book with its applied log.
type bookSM struct {
	*rsm.StateMachine
	// applyMu makes the applied log and the book change together, so a
	// reader sees both at the same index.
	applyMu sync.Mutex
	// log is the demo's and the tests' record of applied commands, bounded
	// (the node sets applied_log_max_bytes).
	log *appliedlog.Log
}

func newBookSM() *bookSM {
	return &bookSM{StateMachine: rsm.New(orderbook.DefaultConfig(), nil), log: appliedlog.New(0)}
}

func (s *bookSM) Apply(index consensus.Index, cmd []byte) {
	s.applyMu.Lock()
	s.log.Add(index, cmd)
	s.StateMachine.Apply(index, cmd)
	s.applyMu.Unlock()
}

func (s *bookSM) Restore(index consensus.Index, snap []byte) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.StateMachine.Restore(index, snap); err != nil {
		return err
	}
	s.log.Restore(index)
	return nil
}

// digest is a hash of the applied commands after index from, with their
// count, for comparing replicas without shipping their logs.
func digest(entries []appliedEntry, from consensus.Index) (n int, sum uint64) {
	h := fnv.New64a()
	var b [8]byte
	for _, e := range entries {
		if e.Index <= from {
			continue
		}
		n++
		for i := range 8 {
			b[i] = byte(uint64(e.Index) >> (8 * i))
		}
		h.Write(b[:])
		h.Write(e.Cmd)
	}
	return n, h.Sum64()
}

// timeline records, in the fabric's clock, the steps of this replica's
// latest leader change: when its detector named it leader, when it asked
// for write permission, when a majority granted it, when it started
// leading (prepare and catch-up done) and its first commit as leader.
type timeline struct {
	lastNowNs      atomic.Int64
	chosenAtNs     atomic.Int64
	requestAtNs    atomic.Int64
	majorityAtNs   atomic.Int64
	leadingAtNs    atomic.Int64
	firstCommitNs  atomic.Int64
	wasChosen      bool   // driving goroutine only
	lastChosenNs   int64  // driving goroutine only
	epoch          uint64 // driving goroutine only
	majorityWaited bool   // driving goroutine only
	leaderTerms    atomic.Uint64

	termsMu sync.Mutex
	terms   []failoverSteps // every term this replica led, oldest first
}

// failoverSteps is a timeline's figures, in the fabric's clock.
type failoverSteps struct {
	ChosenAtNs, RequestAtNs, MajorityAtNs, LeadingAtNs, FirstCommitNs int64
	LeaderTerms                                                       uint64
}

func (t *timeline) current() failoverSteps {
	return failoverSteps{t.chosenAtNs.Load(), t.requestAtNs.Load(), t.majorityAtNs.Load(),
		t.leadingAtNs.Load(), t.firstCommitNs.Load(), t.leaderTerms.Load()}
}

// history returns the terms this replica led.
func (t *timeline) history() []failoverSteps {
	t.termsMu.Lock()
	defer t.termsMu.Unlock()
	return slices.Clone(t.terms)
}

// termAt picks, from terms in Unix ns, the latest that started leading
// by atNs: the term that acknowledged something at atNs.
func termAt(terms []failoverSteps, atNs int64) (failoverSteps, bool) {
	for i := len(terms) - 1; i >= 0; i-- {
		if terms[i].LeadingAtNs != 0 && terms[i].LeadingAtNs <= atNs {
			return terms[i], true
		}
	}
	return failoverSteps{}, false
}

// timedDetector is the pull-score detector behind consensus.Detector, as
// consensus.New wires it, noting when its answer becomes this node.
type timedDetector struct {
	d     *pullscore.Detector
	self  rdma.NodeID
	peers []rdma.NodeID
	tl    *timeline

	// view is the detector's state for status pages, copied on the driving
	// goroutine at most every viewEveryNs: the detector itself is not safe
	// to read from another goroutine.
	view     atomic.Pointer[detectorView]
	viewAtNs int64
}

// detectorView is a copy of what `mu status` shows of the detector.
type detectorView struct {
	Scores     map[rdma.NodeID]int
	Alive      map[rdma.NodeID]bool
	PeerHealth map[rdma.NodeID]string
	Health     string
	Stats      pullscore.Stats
}

const viewEveryNs = int64(time.Millisecond)

func (a *timedDetector) Step(now int64) int64 {
	a.tl.lastNowNs.Store(now)
	wake := a.d.Step(now)
	if now-a.viewAtNs >= viewEveryNs {
		a.viewAtNs = now
		v := &detectorView{Scores: map[rdma.NodeID]int{}, Alive: map[rdma.NodeID]bool{}, PeerHealth: map[rdma.NodeID]string{},
			Health: a.d.Health().String(), Stats: a.d.Stats()}
		for _, p := range a.peers {
			v.Scores[p], v.Alive[p], v.PeerHealth[p] = a.d.Score(p), a.d.Alive(p), a.d.PeerHealth(p).String()
		}
		a.view.Store(v)
	}
	return wake
}
func (a *timedDetector) OnCompletion(c rdma.Completion) { a.d.OnCompletion(c) }
func (a *timedDetector) Alive(id rdma.NodeID) bool      { return a.d.Alive(id) }
func (a *timedDetector) Leader() (rdma.NodeID, bool) {
	l, ok := a.d.Leader()
	chosen := ok && l == a.self
	if chosen && !a.tl.wasChosen {
		a.tl.lastChosenNs = a.tl.lastNowNs.Load()
	}
	a.tl.wasChosen = chosen
	return l, ok
}
func (a *timedDetector) PeerHealth(id rdma.NodeID) consensus.Health {
	switch a.d.PeerHealth(id) {
	case pullscore.Fenced:
		return consensus.HealthFenced
	case pullscore.Degraded:
		return consensus.HealthDegraded
	}
	return consensus.HealthHealthy
}

func (a *timedDetector) SetHealth(h consensus.Health) {
	switch h {
	case consensus.HealthFenced:
		a.d.SetHealth(pullscore.Fenced)
	case consensus.HealthDegraded:
		a.d.SetHealth(pullscore.Degraded)
	default:
		a.d.SetHealth(pullscore.Healthy)
	}
}

// timedPermissions is the permission manager, noting when a request was
// made and when a majority (counting this node) granted it.
type timedPermissions struct {
	*permissions.Manager
	tl *timeline
}

func (p *timedPermissions) Request(now int64) uint64 {
	e := p.Manager.Request(now)
	if !p.tl.majorityWaited {
		// A retry of the same leader change keeps the first request time.
		// The detector's answer may flap later; the term's detection is
		// the choice that led to this request.
		p.tl.chosenAtNs.Store(p.tl.lastChosenNs)
		p.tl.requestAtNs.Store(now)
		p.tl.majorityAtNs.Store(0)
	}
	p.tl.epoch, p.tl.majorityWaited = e, true
	return e
}

func (p *timedPermissions) Step(now int64) int64 {
	wake := p.Manager.Step(now)
	if p.tl.majorityWaited && p.tl.majorityAtNs.Load() == 0 && p.Manager.HasMajority(p.tl.epoch) {
		p.tl.majorityAtNs.Store(now)
	}
	return wake
}

func (p *timedPermissions) Abandon() {
	p.Manager.Abandon()
	p.tl.majorityWaited = false
}

// replicaNode is one replica with what the commands look at.
type replicaNode struct {
	id  rdma.NodeID
	f   rdma.Fabric
	r   *consensus.Replica
	sm  *bookSM
	det *timedDetector
	tl  *timeline
	// wallOffsetNs converts the fabric's clock to Unix nanoseconds.
	wallOffsetNs int64

	cancel context.CancelFunc
	done   chan struct{}

	// busy counts proposals in flight through propose; kick wakes an
	// idle-sleep driver when one arrives.
	busy atomic.Int64
	kick chan struct{}
}

// newReplicaNode builds the replica over f with an instrumented detector
// and permission manager at the offsets consensus.New would use.
func newReplicaNode(f rdma.Fabric, cfg consensus.Config) (*replicaNode, error) {
	n := &replicaNode{id: f.Self(), f: f, sm: newBookSM(), tl: &timeline{}, kick: make(chan struct{}, 1)}
	n.wallOffsetNs = time.Now().UnixNano() - f.Now()
	members := slices.Sorted(slices.Values(cfg.Members))
	var peers []rdma.NodeID
	for _, id := range members {
		if id != n.id {
			peers = append(peers, id)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lay := consensus.NewLayout(cfg)
	if uint64(len(f.Region().Bytes())) < lay.TotalBytes {
		return nil, fmt.Errorf("region is %d bytes, the layout needs %d", len(f.Region().Bytes()), lay.TotalBytes)
	}
	det, err := pullscore.NewDetector(f, n.id, peers, lay.HeartbeatOffset, lay.DetectorScratch, cfg.PullScore)
	if err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	pm, err := permissions.New(f, n.id, peers, lay.PermissionOffset, cfg.Permissions)
	if err != nil {
		return nil, fmt.Errorf("permissions: %w", err)
	}
	n.det = &timedDetector{d: det, self: n.id, peers: peers, tl: n.tl}
	tl := n.tl
	userLC, userCommit := cfg.OnLeaderChange, cfg.OnCommit
	cfg.OnLeaderChange = func(c consensus.LeaderChange) {
		if c.Leader {
			tl.leadingAtNs.Store(c.AtNs)
			tl.firstCommitNs.Store(0)
			tl.leaderTerms.Add(1)
			tl.termsMu.Lock()
			tl.terms = append(tl.terms, tl.current())
			tl.termsMu.Unlock()
		}
		tl.majorityWaited = false
		if userLC != nil {
			userLC(c)
		}
	}
	cfg.OnCommit = func(i consensus.Index) {
		if tl.leadingAtNs.Load() != 0 && tl.firstCommitNs.Load() == 0 {
			now := tl.lastNowNs.Load()
			tl.firstCommitNs.Store(now)
			tl.termsMu.Lock()
			if k := len(tl.terms); k > 0 {
				tl.terms[k-1].FirstCommitNs = now
			}
			tl.termsMu.Unlock()
		}
		if userCommit != nil {
			userCommit(i)
		}
	}
	r, err := consensus.NewWithSeams(f, n.sm, n.det, &timedPermissions{pm, tl}, cfg)
	if err != nil {
		return nil, err
	}
	n.r = r
	return n, nil
}

// start runs the replica's driver until stop.
func (n *replicaNode) start(mode consensus.DriveMode) {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() {
		defer close(n.done)
		_ = n.r.Run(ctx, mode)
	}()
}

// startIdleSleep runs the replica with a driver that spins (yielding)
// while proposals are in flight and otherwise sleeps until the wake-up
// time Step asks for, at most maxSleep: a sleeping replica costs almost no
// CPU, so replicas and the kernel's RDMA work share scarce cores fairly.
// maxSleep must leave the heartbeat counter moving several times per
// peer sample.
func (n *replicaNode) startIdleSleep(maxSleep time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() {
		defer close(n.done)
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		for ctx.Err() == nil {
			wake := n.r.Step(n.f.Now())
			if n.busy.Load() > 0 {
				runtime.Gosched()
				continue
			}
			d := min(time.Duration(wake-n.f.Now()), maxSleep)
			if d < 20*time.Microsecond {
				runtime.Gosched()
				continue
			}
			t.Reset(d)
			select {
			case <-t.C:
			case <-n.kick:
				if !t.Stop() {
					<-t.C
				}
			case <-ctx.Done():
			}
		}
	}()
}

// propose submits cmd and keeps an idle-sleep driver spinning until it
// is decided.
func (n *replicaNode) propose(ctx context.Context, cmd []byte) (consensus.Index, error) {
	n.busy.Add(1)
	defer n.busy.Add(-1)
	select {
	case n.kick <- struct{}{}:
	default:
	}
	return n.r.Propose(ctx, cmd)
}

// stop ends the driver, waits for it and closes the replica, so its
// fabric may be closed next.
func (n *replicaNode) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
	n.r.Close()
}
