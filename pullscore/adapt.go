package pullscore

import mathbits "math/bits"

// adapt derives the sampling period and the failure bound from what the
// detector measures: the round trip of its heartbeat reads, and the gaps
// between fresh beats of live peers (which hold the network's tail and the
// peers' own scheduling jitter). It allocates nothing.
type adapt struct {
	// srttNs and rttvarNs estimate the read round trip as TCP does
	// (RFC 6298: gains 1/8 and 1/4).
	srttNs, rttvarNs int64
	rtts             uint64
	gaps             gapHist
	maxGapNs         int64
	// ownGapNs is the envelope (decaying per sample, half-life ~5 700) of
	// this node's own gaps between Steps longer than a period: its
	// descheduling, and its own long work in a Step (an access-flag change
	// takes 80 µs of CPU on rxe, a leader change two). Its peers run the
	// same code on the same kind of host, so no peer is failed within it.
	ownGapNs int64
	// period and bound are periodNs and boundNs as of the last refresh
	// (each sample): Step judges staleness against them without scanning
	// the histogram.
	period, bound int64
}

// refresh recomputes the period and the bound in use.
func (a *adapt) refresh(cfg Config) {
	a.ownGapNs -= a.ownGapNs >> 13
	a.bound = a.boundNs(cfg)
	a.period = a.periodNs(cfg)
}

func (a *adapt) observeRTT(ns int64) {
	if ns <= 0 {
		return
	}
	if a.rtts == 0 {
		a.srttNs, a.rttvarNs = ns, ns/2
	} else {
		d := ns - a.srttNs
		a.srttNs += d / 8
		a.rttvarNs += (abs(d) - a.rttvarNs) / 4
	}
	a.rtts++
}

func (a *adapt) observeGap(ns int64) {
	if ns <= 0 {
		return
	}
	a.gaps.add(ns)
	// The envelope of the largest gaps forgets with a half-life of ~45 000
	// gaps: a host that deschedules a node for milliseconds now and then
	// keeps its bound above that, however rare.
	a.maxGapNs = max(a.maxGapNs-a.maxGapNs>>16, ns)
}

// periodNs is the sampling period: the round trip plus 2 mean deviations,
// so that an ordinary read returns before the next sample (a late one
// is a miss, which the failure bound absorbs).
//
// With derived steps the period is also at least the failure bound over
// the misses the score can count (ScoreMax-FailBelow+1, at one point per
// miss): a host whose gaps need a 5 ms bound is sampled every ~350 µs.
func (a *adapt) periodNs(cfg Config) int64 {
	p := cfg.ReadIntervalNs
	if a.rtts > 0 {
		p = max(p, a.srttNs+2*a.rttvarNs)
	}
	if cfg.Adaptive() {
		p = max(p, ceilDiv64(a.boundNs(cfg), int64(cfg.ScoreMax-cfg.FailBelow+1)))
	}
	return min(p, cfg.maxPeriodNs())
}

func ceilDiv64(a, b int64) int64 { return (a + b - 1) / b }

// observeOwnGap records a Step that came gapNs after the previous one.
func (a *adapt) observeOwnGap(gapNs int64) { a.ownGapNs = max(a.ownGapNs, gapNs) }

// minGaps is how many gaps the bound needs before it trusts their
// largest.
const minGaps = 256

// boundNs is the failure bound: a quarter more than the larger of the gap
// exceeded once in SuspicionGaps and the envelope of the largest gaps, and
// at least half as much again as this node's own longest gap between
// Steps plus a period. The gaps are staleness reached by live peers, so a
// bound at their tail alone would be exceeded by the next new largest one;
// the margin is the hysteresis that keeps a slightly longer gap from
// failing a peer. The own gap is measured, not sampled: a peer stalled as
// long (an access-flag change in its Step, the host) is as stale as that
// plus the evidence's way here, which the larger margin covers.
func (a *adapt) boundNs(cfg Config) int64 {
	var b int64
	if a.gaps.total < minGaps {
		// Too few gaps (boot): their largest is an underestimate.
		b = 3 * a.maxGapNs
	} else {
		q := a.gaps.quantileAbove(uint64(a.gaps.total) / uint64(cfg.suspicionGaps()))
		b = max(q, a.maxGapNs) * 5 / 4
	}
	b = max(b, (a.ownGapNs+a.period)*3/2)
	return min(max(b, cfg.FailBoundNs), cfg.MaxFailBoundNs)
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// gapHist is a log-linear histogram of gaps in ns: 8 buckets per octave
// (12.5% resolution) up to 2^40 ns. Counts halve once the total reaches
// 1<<16, so it follows the last ~65 000 gaps.
type gapHist struct {
	counts [gapBuckets]uint32
	total  uint32
}

const (
	gapSubBits = 3
	gapSub     = 1 << gapSubBits
	gapOctaves = 40
	gapBuckets = (gapOctaves + 1) * gapSub
	gapDecayAt = 1 << 16
)

// gapBucket is the bucket of x (x > 0): values below gapSub have one
// bucket each; above, bucket (octave, top 3 bits after the leading one).
func gapBucket(x int64) int {
	u := uint64(x)
	if u < gapSub {
		return int(u)
	}
	l := mathbits.Len64(u) // >= gapSubBits+1
	sub := int(u>>(l-1-gapSubBits)) & (gapSub - 1)
	return min((l-gapSubBits)*gapSub+sub, gapBuckets-1)
}

// gapUpper is the largest value of bucket i (inclusive upper edge).
func gapUpper(i int) int64 {
	if i < gapSub {
		return int64(i)
	}
	oct, sub := i/gapSub, i%gapSub
	shift := oct - 1
	return int64((uint64(gapSub+sub+1) << shift) - 1)
}

func (h *gapHist) add(x int64) {
	h.counts[gapBucket(x)]++
	h.total++
	if h.total >= gapDecayAt {
		h.total = 0
		for i := range h.counts {
			h.counts[i] /= 2
			h.total += h.counts[i]
		}
	}
}

// quantileAbove is the lower edge of the highest bucket above which at
// most allowed gaps lie: gaps come in whole periods, and the lower edge
// keeps a gap of exactly k periods at k, not at the next period up.
func (h *gapHist) quantileAbove(allowed uint64) int64 {
	var above uint64
	for i := gapBuckets - 1; i >= 0; i-- {
		if above+uint64(h.counts[i]) > allowed {
			if i == 0 {
				return 0
			}
			return gapUpper(i-1) + 1
		}
		above += uint64(h.counts[i])
	}
	return 0
}
