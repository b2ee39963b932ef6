package main

import (
	"testing"
	"time"
)

func TestCommitWindowQuantilesOfRecentCommits(t *testing.T) {
	var w commitWindow
	now := time.Unix(1000, 0)
	if _, _, n := w.quantiles(now); n != 0 {
		t.Fatalf("empty window counts %d commits", n)
	}
	// 100 commits of 1..100 µs, recorded in shuffled order.
	for i := range 100 {
		w.record(now, time.Duration((i*37)%100+1)*time.Microsecond)
	}
	p50, p99, n := w.quantiles(now)
	if n != 100 || p50 != 50*time.Microsecond || p99 != 99*time.Microsecond {
		t.Errorf("p50 %v p99 %v over %d, want 50µs 99µs over 100", p50, p99, n)
	}
	// Past the window's age, they no longer count.
	if _, _, n := w.quantiles(now.Add(commitWindowAge + time.Second)); n != 0 {
		t.Errorf("%d stale commits counted", n)
	}
	// Beyond its length the oldest records give way: a slow past does not
	// weigh on the p99 of a fast present.
	for range commitWindowLen {
		w.record(now, 3*time.Microsecond)
	}
	if _, p99, n := w.quantiles(now); n != commitWindowLen || p99 != 3*time.Microsecond {
		t.Errorf("after a full window of 3µs: p99 %v over %d", p99, n)
	}
}
