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

// boundNs is the failure bound: the gap exceeded once in SuspicionGaps.
func (a *adapt) boundNs(cfg Config) int64 {
	var b int64
	if n := uint64(cfg.suspicionGaps()); uint64(a.gaps.total) < n {
		// Too few gaps for the quantile: their largest is an underestimate.
		b = 2 * a.maxGapNs
	} else {
		b = max(a.gaps.quantileAbove(uint64(a.gaps.total)/n), a.maxGapNs)
	}
	return min(max(b, cfg.FailBoundNs), cfg.MaxFailBoundNs)
}

// steps returns the score steps: fixed ones from the configuration, or
// derived ones that fail a peer at ScoreMax after bound/period misses.
func (a *adapt) steps(cfg Config, alive bool) (up, down int, missesToFail int) {
	if !cfg.Adaptive() {
		return cfg.upStep(), cfg.DownStep, cfg.MissesToFail()
	}
	period := a.periodNs(cfg)
	k := int(max(2, (a.boundNs(cfg)+period-1)/period))
	span := cfg.ScoreMax - cfg.FailBelow + 1
	down = max(1, ceilDiv(span, k))
	up = 1
	if alive {
		up = down
	}
	return up, down, ceilDiv(span, down)
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
