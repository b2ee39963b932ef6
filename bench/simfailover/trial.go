package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// faultKind is how the leader fails.
type faultKind int

const (
	faultCrash faultKind = iota // SIGKILL-like: CPU and NIC gone
	faultPause                  // SIGSTOP-like gray failure: CPU stopped, NIC still serves its region
)

func (f faultKind) String() string {
	if f == faultPause {
		return "pause"
	}
	return "crash"
}

// trialOptions are the knobs shared by every seed of a run.
type trialOptions struct {
	replicas       int
	fault          faultKind
	simConfig      sim.Config
	consensus      consensus.Config // Members is set per trial
	loadIntervalNs int64            // one client proposal every this long
	payloadBytes   int
	warmupNs       int64 // steady load before the fault
	phaseSpreadNs  int64 // the fault lands uniformly in [0, phaseSpreadNs) after warm-up
	deadlineNs     int64 // a failover slower than this fails the trial
	settleNs       int64 // load kept on after the first commit, before the safety check
}

// sample is one failover, every field in virtual nanoseconds.
type sample struct {
	seed        uint64
	oldLeader   rdma.NodeID
	newLeader   rdma.NodeID
	totalNs     int64 // fault -> first commit acknowledged by the new leader
	detectionNs int64 // fault -> the new leader starts its leader change
	permNs      int64 // permission switch: a majority granted write access
	prepareNs   int64 // read and write min_proposal on a majority
	recoveryNs  int64 // read the undecided slots from a majority and adopt them
	firstNs     int64 // leadership announced -> first commit acknowledged
	elections   int   // leaderships won after the fault (1 = no extra election)
	preFault    int   // proposals acknowledged during warm-up (proves the load ran)
	// boundNs and periodNs: the failure bound and sampling period of the
	// survivors' detectors at the fault (largest of them).
	boundNs, periodNs int64
	// suspicions and samples: every detector's verdicts turned failed and
	// sampling rounds from boot to the fault (no fault yet: every
	// suspicion is false).
	suspicions, samples uint64
	// preFaultNs is the virtual time from boot to the fault.
	preFaultNs int64
}

// Stream of the world's PRNG that places the fault; the fabric uses stream 0.
const faultPhaseStream = 0x5f41

// runTrial builds one group on a fresh simulated fabric, loads it, fails its
// leader and measures the failover. Everything is a function of the seed.
func runTrial(seed uint64, o trialOptions) (sample, error) {
	s := sample{seed: seed}
	w := sim.New(seed, o.simConfig)
	ids := make([]rdma.NodeID, o.replicas)
	for i := range ids {
		ids[i] = rdma.NodeID(i + 1)
	}
	base := o.consensus
	base.Members = ids
	if err := base.Validate(); err != nil {
		return s, err
	}
	regionBytes := int(base.RegionBytes())
	for _, id := range ids {
		w.AddNode(id, regionBytes)
	}
	// The consensus layer starts with read-only replication connections
	// (no leader yet) and a fully open background plane.
	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll})

	var (
		faulted     rdma.NodeID // 0 until the fault
		faultAtNs   int64
		reps        = make([]*consensus.Replica, o.replicas)
		sms         = make([]*logSM, o.replicas)
		lastChange  = make([]consensus.LeaderChange, o.replicas)
		firstAckBy  rdma.NodeID
		firstAckAt  int64
		nextID      uint64
		elections   int
		warmupAcked int
	)
	for i, id := range ids {
		cfg := base
		cfg.OnLeaderChange = func(ch consensus.LeaderChange) {
			if !ch.Leader {
				return
			}
			lastChange[i] = ch
			if faulted != 0 && id != faulted {
				elections++
			}
		}
		sms[i] = &logSM{}
		r, err := consensus.New(w.Node(id), sms[i], cfg)
		if err != nil {
			return s, fmt.Errorf("node %d: %w", id, err)
		}
		r.SetResultHandler(func(_ uint64, _ consensus.Index, err error) {
			if err != nil {
				return // lost with the old leader, or refused: the client just goes on
			}
			if faulted == 0 {
				warmupAcked++
				return
			}
			if id != faulted && firstAckBy == 0 {
				firstAckBy, firstAckAt = id, w.Now()
			}
		})
		reps[i] = r
		w.SetStepper(id, r)
	}

	// The client proposes to the replica that claims to lead, skipping the
	// failed one: a paused leader still believes it leads, and the figure
	// wanted is the group's failover, not a client's timeout.
	payload := make([]byte, o.payloadBytes)
	propose := func() {
		for i, r := range reps {
			if ids[i] == faulted || !r.IsLeader() {
				continue
			}
			nextID++
			binary.LittleEndian.PutUint64(payload, nextID)
			if r.Submit(payload, nextID) == nil {
				// The real driver busy-polls its submission ring; in the
				// simulator the replica must be woken to see the proposal.
				w.SetStepper(ids[i], r)
			}
			return
		}
	}
	var tick func()
	tick = func() {
		propose()
		w.Schedule(w.Now()+o.loadIntervalNs, tick)
	}

	leaderIdx := -1
	if !w.RunUntil(func() bool {
		for i, r := range reps {
			if r.IsLeader() {
				leaderIdx = i
				return true
			}
		}
		return false
	}, 50_000_000) {
		return s, errors.New("no leader 50 ms after boot")
	}
	tick()
	w.RunFor(o.warmupNs)
	if warmupAcked == 0 {
		return s, errors.New("no proposal committed during warm-up")
	}
	// A leader may change during warm-up (rare tail latencies): fail whoever
	// leads now.
	leaderIdx = -1
	for i, r := range reps {
		if r.IsLeader() {
			leaderIdx = i
		}
	}
	if leaderIdx < 0 {
		return s, errors.New("no leader at the end of warm-up")
	}
	// Vary the fault's phase against the detector's sampling cadence.
	w.RunFor(w.Rand(faultPhaseStream).Int64N(o.phaseSpreadNs))

	s.oldLeader = ids[leaderIdx]
	s.preFault = warmupAcked
	for i, r := range reps {
		if i != leaderIdx {
			s.boundNs = max(s.boundNs, r.Detector().FailBoundNs())
			s.periodNs = max(s.periodNs, r.Detector().PeriodNs())
		}
		st := r.Detector().Stats()
		s.suspicions += st.Suspicions
		s.samples += st.Samples
	}
	faulted, faultAtNs = s.oldLeader, w.Now()
	s.preFaultNs = faultAtNs
	switch o.fault {
	case faultCrash:
		w.Crash(faulted, false)
	case faultPause:
		w.Pause(faulted)
	}
	// Propose to a new leader the moment it announces itself, not at the
	// client's next tick, so the first-commit phase is the protocol's own.
	announced := 0
	if !w.RunUntil(func() bool {
		if firstAckBy != 0 {
			return true
		}
		if elections > announced {
			announced = elections
			w.Schedule(w.Now(), propose)
		}
		return false
	}, faultAtNs+o.deadlineNs) {
		return s, fmt.Errorf("no commit by a new leader %d ms after the %s of leader %d; %s", o.deadlineNs/1_000_000, o.fault, faulted, describe(ids, reps, faulted))
	}
	s.newLeader = firstAckBy
	s.totalNs = firstAckAt - faultAtNs
	ch := lastChange[int(firstAckBy)-1]
	if ch.AtNs < faultAtNs {
		return s, fmt.Errorf("node %d acknowledged a commit after the fault without a leader change after it", firstAckBy)
	}
	startNs := ch.AtNs - ch.PermissionNs - ch.PrepareNs - ch.RecoveryNs
	s.detectionNs = startNs - faultAtNs
	s.permNs, s.prepareNs, s.recoveryNs = ch.PermissionNs, ch.PrepareNs, ch.RecoveryNs
	s.firstNs = firstAckAt - ch.AtNs
	s.elections = elections
	if s.detectionNs < 0 || s.permNs < 0 || s.prepareNs < 0 || s.recoveryNs < 0 || s.firstNs < 0 {
		return s, fmt.Errorf("inconsistent breakdown: fault at %d ns, leader change %+v, first ack at %d ns", faultAtNs, ch, firstAckAt)
	}

	// Safety after the measurement: keep the load on, let a paused leader
	// come back (SIGCONT) and step down; then exactly one replica leads and
	// every replica still running has applied the same commands in the
	// same order.
	w.RunFor(o.settleNs)
	if o.fault == faultPause {
		w.Resume(faulted)
		w.RunFor(o.settleNs)
	}
	leaders := 0
	for i, r := range reps {
		if !(ids[i] == faulted && o.fault == faultCrash) && r.IsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		return s, fmt.Errorf("%d replicas lead after the failover settled; %s", leaders, describe(ids, reps, 0))
	}
	for i := range sms {
		if ids[i] == faulted && o.fault == faultCrash {
			continue
		}
		for j := i + 1; j < len(sms); j++ {
			if ids[j] == faulted && o.fault == faultCrash {
				continue
			}
			if k, ok := samePrefix(sms[i].ids, sms[j].ids); !ok {
				return s, fmt.Errorf("replicas %d and %d applied different commands at position %d", ids[i], ids[j], k)
			}
		}
	}
	return s, nil
}

// logSM is the replicated state machine: it records the proposal ids it
// applied, in order, so replicas can be compared after the failover.
type logSM struct {
	ids []uint64
}

func (m *logSM) Apply(_ consensus.Index, cmd []byte) {
	m.ids = append(m.ids, binary.LittleEndian.Uint64(cmd))
}

func (m *logSM) Snapshot() ([]byte, error) {
	out := make([]byte, 0, 8*len(m.ids))
	for _, id := range m.ids {
		out = binary.LittleEndian.AppendUint64(out, id)
	}
	return out, nil
}

func (m *logSM) Restore(_ consensus.Index, snap []byte) error {
	if len(snap)%8 != 0 {
		return errors.New("logSM: snapshot length not a multiple of 8")
	}
	m.ids = m.ids[:0]
	for p := snap; len(p) > 0; p = p[8:] {
		m.ids = append(m.ids, binary.LittleEndian.Uint64(p))
	}
	return nil
}

// samePrefix reports whether a and b agree on their common prefix, and
// where they first differ if not.
func samePrefix(a, b []uint64) (int, bool) {
	for k := range min(len(a), len(b)) {
		if a[k] != b[k] {
			return k, false
		}
	}
	return 0, true
}

// describe is each replica's view, for a failed trial's message.
func describe(ids []rdma.NodeID, reps []*consensus.Replica, faulted rdma.NodeID) string {
	var b strings.Builder
	for i, r := range reps {
		if ids[i] == faulted {
			fmt.Fprintf(&b, "node %d: failed; ", ids[i])
			continue
		}
		st := r.Stats()
		l, ok := r.Leader()
		fmt.Fprintf(&b, "node %d: leads=%v detector names %d (%v), elections started %d, terms won %d, commit %d; ",
			ids[i], r.IsLeader(), l, ok, st.Elections, st.LeaderTerms, r.CommitIndex())
	}
	return b.String()
}
