package main

import (
	"time"
)

// ticker converts rdtsc ticks to nanoseconds, calibrated against the wall
// clock the way perftest calibrates its cycle counter.
type ticker struct{ nsPerTick float64 }

func calibrate() ticker {
	if !haveTSC {
		return ticker{nsPerTick: 1}
	}
	t0, c0 := time.Now(), rdtsc()
	time.Sleep(200 * time.Millisecond)
	t1, c1 := time.Now(), rdtsc()
	return ticker{nsPerTick: float64(t1.Sub(t0).Nanoseconds()) / float64(c1-c0)}
}

func (t ticker) ns(ticks uint64) int64 { return int64(float64(ticks) * t.nsPerTick) }

// costs measures what one clock read and one empty poll cost here, so the
// report shows what the environment charges per call.
func (p *pair) costs(t ticker) (nowNs, tscNs, pollNs float64) {
	const n = 2000
	start := time.Now()
	for range n {
		_ = p.a.Now()
	}
	nowNs = float64(time.Since(start).Nanoseconds()) / n
	c0 := rdtsc()
	for range n {
		_ = rdtsc()
	}
	tscNs = float64(t.ns(rdtsc()-c0)) / n
	out := make([]rdmaCompletion, 4)
	c0 = rdtsc()
	for range n {
		p.a.Poll(out)
	}
	pollNs = float64(t.ns(rdtsc()-c0)) / n
	return
}
