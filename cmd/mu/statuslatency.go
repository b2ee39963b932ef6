package main

import (
	"slices"
	"sync"
	"time"
)

// commitWindow keeps the latest proposals' commit latencies (from the
// endpoint's call to the answer) so `mu status` can show the group's
// recent p50 and p99 without a metrics server. Only the node that takes
// proposals, the leader, fills it.
type commitWindow struct {
	mu   sync.Mutex
	atNs [commitWindowLen]int64 // when each latency was recorded, Unix ns
	lat  [commitWindowLen]time.Duration
	next int // slot the next record goes in
	n    int // records held, up to commitWindowLen
}

const (
	// commitWindowLen bounds the records and the sort a status request
	// does; at high rates the window is the latest commitWindowLen commits.
	commitWindowLen = 4096
	// commitWindowAge is the oldest record a status counts: a leader that
	// stopped committing shows no latency rather than a stale one.
	commitWindowAge = 10 * time.Second
)

// record adds one commit that took d, finished at now.
func (w *commitWindow) record(now time.Time, d time.Duration) {
	w.mu.Lock()
	w.atNs[w.next], w.lat[w.next] = now.UnixNano(), d
	w.next = (w.next + 1) % commitWindowLen
	w.n = min(w.n+1, commitWindowLen)
	w.mu.Unlock()
}

// quantiles returns the median and 99th percentile of the commits recorded
// in the commitWindowAge before now, and how many there were (0: none,
// and no quantiles).
func (w *commitWindow) quantiles(now time.Time) (p50, p99 time.Duration, count int) {
	from := now.Add(-commitWindowAge).UnixNano()
	recent := make([]time.Duration, 0, commitWindowLen)
	w.mu.Lock()
	for i := range w.n {
		if w.atNs[i] >= from {
			recent = append(recent, w.lat[i])
		}
	}
	w.mu.Unlock()
	if len(recent) == 0 {
		return 0, 0, 0
	}
	slices.Sort(recent)
	return nearestRank(recent, 0.50), nearestRank(recent, 0.99), len(recent)
}

// nearestRank is the q-quantile of sorted by the nearest-rank method: the
// smallest value at or above which a fraction q of the values lie.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.999999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
