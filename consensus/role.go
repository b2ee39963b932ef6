package consensus

import "github.com/rdmaconsensus/mu/rdma"

// degradeHold is how long a replica that failed to lead with a majority
// stays degraded, so peers elect someone else instead of waiting on it.
func (r *Replica) degradeHold() int64 { return 4 * r.cfg.ElectionTimeoutNs }

// stallNs is how long silence lasts before a leader gives up or a node
// calls itself blind: ElectionTimeoutNs, or the detector's measured failure
// bound where the host stalls the nodes for longer (a leader must not give
// up over a stall its detector, and its peers', would ride out).
func (r *Replica) stallNs() int64 {
	if d, ok := r.det.(interface{ FailBoundNs() int64 }); ok {
		return max(r.cfg.ElectionTimeoutNs, d.FailBoundNs())
	}
	return r.cfg.ElectionTimeoutNs
}

// retryNs spaces retries to a failed peer so an errored connection is not
// hammered in a tight loop while the permission manager repairs it.
func (r *Replica) retryNs() int64 { return r.cfg.HeaderPollNs }

// aliveSet is this replica and the peers its detector sees alive.
func (r *Replica) aliveSet() voterSet {
	v := r.selfBit()
	for i := range r.peers {
		if r.det.Alive(r.peers[i].id) {
			v |= r.peers[i].bit()
		}
	}
	return v
}

func (r *Replica) alivePeers() int {
	n := 0
	for i := range r.peers {
		if r.det.Alive(r.peers[i].id) {
			n++
		}
	}
	return n
}

// stepRole runs the role's work and the transitions between roles.
func (r *Replica) stepRole(now int64) (wake int64) {
	if r.fenced {
		return 0
	}
	if c, ok := openWord(le.Uint64(r.region[hdrCaughtUp:])); r.rejoining && ok && c != 0 {
		r.rejoining = false
		r.publishHeader()
	}
	// A replica that cannot see a majority, lost its log, or recently
	// failed to lead advertises itself degraded so peers prefer another.
	// Not seeing a majority alive must last a while before it counts: a
	// peer busy in a 540 us connection Reset misses a few heartbeats.
	seesQuorum := r.quorate(r.aliveSet())
	if seesQuorum {
		r.blindSince = 0
	} else if r.blindSince == 0 {
		r.blindSince = now
	}
	blind := r.blindSince != 0 && now-r.blindSince > r.stallNs()
	if r.role == roleLeader && r.noQuorumSince == 0 {
		blind = false // its writes reach a majority: better evidence than heartbeats
	}
	h := HealthHealthy
	if r.rejoining || r.behind || blind || now < r.degradeUntil || r.degradedA.Load() {
		h = HealthDegraded
	}
	if h != r.health {
		r.setHealth(h)
	}
	ldr, ok := r.det.Leader()
	able := !r.rejoining && !r.behind && !blind
	// Leadership is sticky: a follower the detector names contests only
	// when the node holding its log (the leader it last granted) is gone
	// or unhealthy. A healthy leader that a peer merely missed for a few
	// heartbeats (a Reset takes 540 us of CPU) is not taken over, which
	// is what stops ping-pong under partial connectivity.
	holder, held := r.perms.Holder()
	if b := le.Uint64(r.region[hdrLeaderBeat:]); b != r.seenBeat {
		r.seenBeat, r.seenBeatAt = b, now
	}
	if held && holder != r.holderSeen {
		r.holderSeen, r.holderAt = holder, now
	}
	silentNs := now - max(r.seenBeatAt, r.holderAt)
	active := silentNs <= 10*r.cfg.LeaderBeatNs
	if !active && held && holder != r.self {
		// Its leader beats stopped. If its heartbeat stopped with them,
		// the whole process is stalled (descheduled on a loaded host, or
		// dead): that is the detector's to judge, with its measured bound,
		// not 10 beats'. If its heartbeat still moves, it runs and no
		// longer leads (it stepped down): take over now.
		if s, ok := r.det.(interface {
			StaleNs(rdma.NodeID, int64) int64
		}); ok {
			active = 2*s.StaleNs(holder, now) >= silentNs
		}
	}
	// A node granted this log moments ago is mid-election: it asked, so
	// it was alive, and its grantors' permission switches (tens of µs per
	// connection) can stall the heartbeats that would show it. Contesting
	// it then would undo a handover or a failover half way.
	fresh := now-r.holderAt <= r.stallNs()
	incumbentOK := held && holder != r.self && active && (fresh || r.det.Alive(holder)) &&
		r.det.PeerHealth(holder) == HealthHealthy
	// Only a voter of the newest configuration it knows stands; a leader
	// removed by a change leads until the change is in force (base), one
	// added leads as soon as it is added.
	want := ok && ldr == r.self && able && !incumbentOK && r.isVoter()
	if r.role == roleLeader {
		// A leader stays while its writes reach a majority (leaderStep
		// gives up otherwise) and nobody took its log (below).
		want = able && (r.mem.base.has(r.selfIdx) || r.isVoter())
		// One the hardware arbiter degraded hands over as soon as the
		// detector names a healthy live peer: stopping before that peer
		// asks for permission leaves no write of it in flight for a
		// grantor to refuse, which would cost the grantor a connection
		// Reset (540 µs on rxe) before its grant goes out.
		if r.degradedA.Load() && ok && ldr != r.self && r.det.Alive(ldr) && r.det.PeerHealth(ldr) == HealthHealthy {
			want = false
		}
	}
	if r.role != roleFollower {
		// Granting another node's request (which the permission manager
		// does whatever this node's role) hands it this log: a leader or
		// candidate that no longer holds its own log must stop at once.
		if h, hok := r.perms.Holder(); hok && h != r.self {
			r.stepDown(StepDownLogTaken)
			return 0
		}
	}
	switch r.role {
	case roleFollower:
		if r.handoverStep(now, able && r.isVoter()) {
			return r.electionStep(now)
		}
		if !want {
			r.wantSince = 0
			return 0
		}
		if r.wantSince == 0 {
			r.wantSince = now
		}
		if now-r.wantSince < r.cfg.LeaderStableNs {
			return r.wantSince + r.cfg.LeaderStableNs
		}
		r.startElection(now, true)
		switch {
		case !held || holder == r.self:
			r.el.cause = TakeoverVacant
		case !fresh && !r.det.Alive(holder):
			r.el.cause = TakeoverHolderFailed
		case r.det.PeerHealth(holder) != HealthHealthy:
			r.el.cause = TakeoverHolderDegraded
		default:
			r.el.cause = TakeoverHolderSilent
		}
		return r.electionStep(now)
	case roleCandidate:
		if !want && !r.takingOver {
			r.stepDown(StepDownNone) // a candidate: not reported
			return 0
		}
		return r.electionStep(now)
	default:
		if !want {
			why := StepDownHandover
			if !able {
				why = StepDownUnable
			} else if !r.mem.base.has(r.selfIdx) && !r.isVoter() {
				why = StepDownRemoved
			}
			r.stepDown(why)
			return 0
		}
		return r.leaderStep(now)
	}
}

func (r *Replica) resetPeers() {
	for i := range r.peers {
		p := &r.peers[i]
		r.dropBatch(p)
		p.gen++
		p.state = peerIdle
		p.since = r.now
		p.commitInflight, p.headerInflight = false, false
		p.hdrOK, p.prepOK, p.windowOK = false, false, false
		p.windowParts = 0
	}
	r.snapBusy = false
}

// flushStaleWrites resets every replication connection that still has
// writes of this replica in flight (to a peer that was cut off, they are
// retransmitted until the transport timeout). Asking for permission would
// re-open those peers' logs to this replica, and a write of an earlier
// term landing then could overwrite entries the peer has since accepted
// or committed under a newer leader: an accept below the promised
// proposal. Resetting the local end drops them for good.
func (r *Replica) flushStaleWrites() {
	for i := range r.peers {
		p := &r.peers[i]
		r.dropBatch(p) // never posted: nothing of it can land
		if p.writesOut == 0 {
			continue
		}
		if err := p.conn.Reset(p.conn.RemoteAccess()); err != nil {
			r.stats.OpErrors++
			continue
		}
		r.stats.StaleFlushes++
	}
}
