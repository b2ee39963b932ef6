package pullscore

import "github.com/rdmaconsensus/mu/rdma"

// With derived steps (Config.DownStep 0) a live peer's score is not a tally
// of samples but its staleness: the time since its last fresh beat, on this
// node's clock, less the time this node was itself descheduled (a Step more
// than a period after the previous one). A reader that was not running saw
// nothing, and that is not the peer's silence; nor is a read whose
// completion it had not yet polled. The peer fails when its staleness
// reaches the measured bound, which follows the tail of the same
// staleness between fresh beats of live peers: the writer's own scheduling
// gaps and the fabric's delays, not the reader's.
//
// The score maps staleness linearly: ScoreMax up to a period (a beat is
// due once a period), below FailBelow at the bound. A failed peer regains one point per sample that found it
// fresh and loses one per sample that did not, so it is alive again only
// after RecoverAbove-FailBelow+1 fresh samples (the hysteresis).

// staleNs is how long p has gone without a fresh beat while this node was
// looking.
func (d *Detector) staleNs(p *peer, now int64) int64 {
	return now - p.freshNs - (d.stalledNs - p.stalledAtFresh)
}

// judge lowers the score of every live peer to what its staleness allows
// and reports whether a verdict changed. It runs on every Step, so a peer
// fails when its staleness reaches the bound, not at the next sample.
func (d *Detector) judge(now int64) (changed bool) {
	bound := d.ad.bound
	span := int64(d.cfg.ScoreMax - d.cfg.FailBelow + 1)
	for i := range d.peers {
		p := &d.peers[i]
		if p.freshNs == 0 || !p.score.Alive() {
			continue
		}
		stale := d.staleNs(p, now)
		if stale <= 0 {
			continue
		}
		// A beat is due once a period: the score falls from there.
		drop := stale * span / bound
		if period := d.ad.period; bound > 2*period {
			drop = max(stale-period, 0) * span / (bound - period)
		}
		if v := int64(p.score.Value()); drop > int64(d.cfg.ScoreMax)-v {
			if p.score.ObserveStep(false, 0, int(drop-(int64(d.cfg.ScoreMax)-v))) {
				d.stats.Suspicions++
				p.suspected = true
				p.failedAtNs = now
				changed = true
			}
		}
	}
	return changed
}

// regain gives a failed peer a point for its first fresh beat in a
// sampling interval, as soon as it is learnt.
func (d *Detector) regain(p *peer) {
	if p.score.Alive() || p.regainedIn == d.stats.Samples {
		return
	}
	p.regainedIn = d.stats.Samples
	if p.score.ObserveStep(true, 1, 0) {
		d.changed = true
	}
}

// unfresh takes a point from a failed peer at a sample when the interval
// that ended brought no fresh beat of it (sample has counted the new one).
func (d *Detector) unfresh(p *peer) {
	// Before its first beat a peer has had no chance to be fresh (boot).
	if !p.score.Alive() && p.freshNs != 0 && p.regainedIn != d.stats.Samples-1 {
		p.score.ObserveStep(false, 1, 1)
	}
}

// StaleNs is how long peer id has gone without a fresh beat while this
// node was looking (its own descheduled time left out): 0 for an unknown
// id or before the peer's first beat. A caller tells a peer whose whole
// process stalled (this grows) from one that runs but stopped some other
// activity (this stays near a period).
func (d *Detector) StaleNs(id rdma.NodeID, now int64) int64 {
	for i := range d.peers {
		if p := &d.peers[i]; p.id == id {
			if p.freshNs == 0 {
				return 0
			}
			return max(d.staleNs(p, now), 0)
		}
	}
	return 0
}
