package consensus

import (
	"context"
	"errors"
	"fmt"

	"github.com/rdmaconsensus/mu/rdma"
)

// Leadership transfer (docs/membership.md, "Leadership transfer"). The
// leader stops draining proposals, waits until the target acknowledged
// every slot and the commit index covers them, then writes its own
// proposal into the target's handover word. The target, seeing there the
// proposal of the node that holds its log and that it promised, starts a
// leader change at once, without waiting for the detector; its request
// for permission reaches the old leader, whose grant makes it step down.
// The transfer ends when the target leads: the old leader, now a
// follower, waits for the target's first leader beat and meanwhile does
// not contest the target's election (which it would once the grant is
// older than a stall bound, on a loaded host); if it leads again before
// the target does, it hands over again. The detector still names the
// lowest-id healthy node, but leadership is sticky: nobody contests a
// healthy holder that beats, so the target keeps leading. Nothing
// acknowledged can be lost: the target's recovery is the ordinary
// prepare, and who stands for election decides liveness only.

var (
	// ErrTransferBusy: a leadership transfer is already under way here.
	ErrTransferBusy = errors.New("consensus: a leadership transfer is already under way")
	// ErrTransferTimeout: the target did not lead in time (it did not
	// catch up, or its elections failed). This replica leads on if it
	// led when the time ran out; a target that holds the log may still
	// finish its election.
	ErrTransferTimeout = errors.New("consensus: leadership transfer timed out")
)

// A transfer's two parts are bounded in stall bounds (stallNs): catching
// the target up and handing over, while proposals wait; then, from the
// first handover, the target's election, which gives up after three
// (electionStep), perhaps another handover and election, and the first
// beat reaching this replica.
const (
	transferCatchUpStalls  = 4
	transferTakeoverStalls = 8
)

// xferResult is a transfer's outcome for TransferLeadership.
type xferResult struct {
	gen uint64
	err error
}

// transfer is the leader's side of a transfer under way.
type transfer struct {
	active  bool
	gen     uint64
	to      rdma.NodeID
	peer    int // peers index of the target
	startAt int64
	sentAt  int64 // handover word posted; 0 not yet
	// handed: this replica stepped down with the target holding its
	// log, and waits for the target to lead (takeoverStep); beat0 is its
	// leader-beat word then.
	handed   bool
	beat0    uint64
	handedAt int64 // the first handover took effect; 0 not yet
	// retryAt: this replica led again after a handover, and hands over
	// again; 0 not
	retryAt int64
}

// xferDeadline is when the transfer under way times out.
func (r *Replica) xferDeadline() int64 {
	x := &r.xfer
	if x.handedAt == 0 {
		return x.startAt + transferCatchUpStalls*r.stallNs()
	}
	d := x.handedAt + transferTakeoverStalls*r.stallNs()
	if x.retryAt != 0 && !x.handed {
		// Handing over again holds proposals: no longer than the first
		// catch-up may.
		d = min(d, x.retryAt+transferCatchUpStalls*r.stallNs())
	}
	return d
}

// xferTimeout is the outcome of a transfer past its deadline.
func (r *Replica) xferTimeout() error {
	if r.xfer.handedAt != 0 {
		return fmt.Errorf("%w: %d held the log but did not lead within %d stall bounds", ErrTransferTimeout, r.xfer.to, transferTakeoverStalls)
	}
	return fmt.Errorf("%w: %d not caught up and handed over within %d stall bounds", ErrTransferTimeout, r.xfer.to, transferCatchUpStalls)
}

// StartTransfer asks this replica, which must lead, to hand leadership to
// member to, without blocking. The outcome goes to the handler set with
// SetTransferHandler from a later Step. For the driving goroutine (the
// simulator); others use TransferLeadership.
func (r *Replica) StartTransfer(to rdma.NodeID) error {
	_, err := r.startTransfer(to)
	return err
}

func (r *Replica) startTransfer(to rdma.NodeID) (uint64, error) {
	m, err := r.leaderRequest(to, "transfer target")
	if err != nil {
		return 0, err
	}
	if !voterSet(r.votersA.Load()).has(m) {
		return 0, fmt.Errorf("%w: transfer target %d is a learner, which never leads", ErrInvalidConfig, to)
	}
	gen := r.xferGen.Add(1)
	if !r.xferReq.CompareAndSwap(0, gen<<8|uint64(m+1)) {
		return 0, ErrTransferBusy
	}
	return gen, nil
}

// TransferLeadership hands leadership to member to and returns once to
// leads (it took this replica's log after this replica stopped proposing
// with to caught up, and its election ended), or with the reason it did
// not happen: a *NotLeaderError, ErrTransferBusy, ErrTransferTimeout,
// ErrLeadershipLost (another node took over), ErrFenced, or ctx's error
// (the transfer is abandoned, but a handover already sent may still make
// to lead). Proposals made meanwhile wait and then fail with a
// NotLeaderError naming to. Safe from any goroutine but the driver's.
func (r *Replica) TransferLeadership(ctx context.Context, to rdma.NodeID) error {
	if to == r.self {
		if !r.isLeader.Load() {
			l, ok := r.Leader()
			return &NotLeaderError{Leader: l, Known: ok}
		}
		return nil
	}
	gen, err := r.startTransfer(to)
	if err != nil {
		return err
	}
	for {
		select {
		case res := <-r.xferDone:
			if res.gen == gen {
				return res.err
			}
		case <-ctx.Done():
			r.xferAbort.Store(gen)
			return ctx.Err()
		}
	}
}

// TransferHandler receives the outcome of a StartTransfer.
type TransferHandler func(to rdma.NodeID, err error)

// SetTransferHandler sets where StartTransfer outcomes go. Call before
// stepping.
func (r *Replica) SetTransferHandler(fn TransferHandler) { r.onTransfer = fn }

// takeTransfer picks up a transfer request at the start of a Step, and
// follows a handed-over transfer to its end.
func (r *Replica) takeTransfer(now int64) {
	if a := r.xferAbort.Swap(0); a != 0 && r.xfer.active && r.xfer.gen == a {
		r.finishTransfer(context.Canceled)
	}
	r.takeoverStep(now)
	req := r.xferReq.Swap(0)
	if req == 0 {
		return
	}
	gen, m := req>>8, int(req&0xff)-1
	to := r.cfg.Members[m]
	if r.role != roleLeader || r.fenced {
		r.xfer = transfer{gen: gen, to: to}
		r.finishTransfer(r.notLeader())
		return
	}
	if r.xfer.active {
		r.finishTransfer(ErrTransferBusy) // superseded
	}
	r.xfer = transfer{active: true, gen: gen, to: to, peer: -1, startAt: now}
	if m == r.selfIdx {
		r.finishTransfer(nil)
		return
	}
	if !r.mem.latest().has(m) {
		r.finishTransfer(fmt.Errorf("%w: transfer target %d is a learner, which never leads", ErrInvalidConfig, to))
		return
	}
	r.xfer.peer = r.byMem[m]
}

// finishTransfer reports the transfer's outcome and ends it.
func (r *Replica) finishTransfer(err error) {
	x := r.xfer
	r.xfer = transfer{}
	select {
	case r.xferDone <- xferResult{gen: x.gen, err: err}:
	default:
		// A result nobody collected (an abandoned or a driver-side
		// transfer) is replaced.
		select {
		case <-r.xferDone:
		default:
		}
		r.xferDone <- xferResult{gen: x.gen, err: err}
	}
	if r.onTransfer != nil {
		r.onTransfer(x.to, err)
	}
}

// transferStep is the leader's transfer work; it reports whether
// proposals must wait (a transfer is under way).
func (r *Replica) transferStep(now int64) (hold bool, wake int64) {
	if !r.xfer.active {
		return false, 0
	}
	if now > r.xferDeadline() {
		r.finishTransfer(r.xferTimeout())
		return false, 0
	}
	wake = r.xferDeadline() + 1
	if r.xfer.handed {
		// Leading again before the target did (its election failed and
		// this replica won the next one): hand over again under the new
		// proposal, unless the target fenced itself. A target not seen
		// alive is tried again: on a loaded host that passes, and the
		// hold on proposals is bounded (xferDeadline).
		if r.det.PeerHealth(r.xfer.to) == HealthFenced {
			r.finishTransfer(fmt.Errorf("%w: %d held the log but fenced itself", ErrTransferTimeout, r.xfer.to))
			return false, 0
		}
		r.xfer.handed, r.xfer.sentAt, r.xfer.retryAt = false, 0, now
		wake = r.xferDeadline() + 1
	}
	p := &r.peers[r.xfer.peer]
	if p.state != peerReplicating {
		r.xfer.sentAt = 0 // the handover may be lost with the connection: send it again
	}
	if r.xfer.sentAt != 0 || p.state != peerReplicating || p.acked < r.next-1 || r.commit < r.next-1 {
		return true, wake
	}
	// Caught up and nothing in flight: hand over.
	st := r.lay.stage(p.member)
	le.PutUint64(r.region[st+stageHandover:], sealWord(r.proposal))
	if r.post(p, rdma.WorkRequest{ID: makeWRID(wrHandover, p.member, p.gen, 0), Op: rdma.OpWrite,
		LocalOffset: st + stageHandover, RemoteOffset: r.lay.HandoverOffset, Length: 8}) {
		r.xfer.sentAt = now
	}
	return true, wake
}

// stepDownTransfer follows a transfer when this leader steps down: if the
// target now holds its log, the transfer waits for it to lead
// (takeoverStep); otherwise it is lost.
func (r *Replica) stepDownTransfer() {
	if !r.xfer.active {
		return
	}
	if h, ok := r.perms.Holder(); ok && h == r.xfer.to {
		r.xfer.handed = true
		r.xfer.beat0 = le.Uint64(r.region[hdrLeaderBeat:])
		if r.xfer.handedAt == 0 {
			r.xfer.handedAt = r.now
		}
		return
	}
	r.finishTransfer(r.lostTransfer())
}

// lostTransfer is the outcome of a transfer whose target did not get to
// lead because another node took this replica's log.
func (r *Replica) lostTransfer() error {
	if h, ok := r.perms.Holder(); ok && h != r.self {
		return fmt.Errorf("%w: node %d took over before %d led", ErrLeadershipLost, h, r.xfer.to)
	}
	return fmt.Errorf("%w: %d did not lead", ErrLeadershipLost, r.xfer.to)
}

// takeoverStep is the old leader's side once the target holds its log:
// the transfer succeeds at the target's first leader beat (only the
// holder of this log can write it, and only a leader beats), and fails
// if a third node takes the log, or at the transfer's deadline (while
// this replica stands again itself, or then steps down with nobody else
// holding its log, it waits on: it may lead and hand over again). Until
// then this replica treats the target as just granted, so it does not
// contest the target's election when it takes longer than a stall bound
// (stepRole's fresh holder): while the target is alive and healthy. A
// target that gave up advertises itself degraded; then this replica may
// lead again, and hands over again (transferStep).
func (r *Replica) takeoverStep(now int64) {
	x := &r.xfer
	if !x.active || !x.handed || r.role == roleLeader {
		return
	}
	holder, held := r.perms.Holder()
	switch {
	case r.fenced:
		r.finishTransfer(ErrFenced)
	case held && holder == x.to && le.Uint64(r.region[hdrLeaderBeat:]) != x.beat0:
		r.finishTransfer(nil)
	case now > r.xferDeadline():
		r.finishTransfer(r.xferTimeout())
	case held && holder != x.to && holder != r.self:
		r.finishTransfer(r.lostTransfer())
	case r.role == roleFollower && held && holder == x.to && r.det.Alive(x.to) && r.det.PeerHealth(x.to) == HealthHealthy:
		r.holderAt = now
	}
}

// handoverStep is the target's side: a handover word holding the
// proposal this replica promised, from the node that holds its log,
// starts a leader change at once. It reports whether it started one.
func (r *Replica) handoverStep(now int64, able bool) bool {
	v, ok := openWord(le.Uint64(r.region[r.lay.HandoverOffset:]))
	if !ok || v == 0 || v == r.handoverSeen {
		return false
	}
	mp, okMP := openWord(le.Uint64(r.region[hdrMinProposal:]))
	holder, held := r.perms.Holder()
	from := r.cfg.Members[int((v-1)%uint64(r.n))]
	if !okMP || mp != v || !held || holder != from || from == r.self {
		r.handoverSeen = v // stale, or not from the leader this log follows
		return false
	}
	if !able {
		// Not able to lead at this moment (blind on a stalled host, or
		// still behind): the handover stands while min_proposal and the
		// holder are unchanged, so look again at the next Step. Marking
		// it seen would drop it, and the leader's next handover under the
		// same proposal too.
		return false
	}
	r.handoverSeen = v
	r.stats.TakeOvers++
	r.takingOver = true
	r.startElection(now, true)
	r.el.cause = TakeoverTransfer
	return true
}
