package jepsen

import (
	"context"
	"sync"
	"time"
)

// Sample is who led at one instant, as a majority of the nodes that
// answered named it (0: no majority named one, or none answered).
type Sample struct {
	AtNs   int64
	Leader int
	Up     int // nodes that answered
}

// Monitor polls every node's status and keeps the leader over time.
type Monitor struct {
	c       *Cluster
	period  time.Duration
	mu      sync.Mutex
	samples []Sample
	done    chan struct{}
}

// StartMonitor polls c every period until ctx ends.
func StartMonitor(ctx context.Context, c *Cluster, period time.Duration) *Monitor {
	m := &Monitor{c: c, period: period, done: make(chan struct{})}
	go m.run(ctx)
	return m
}

func (m *Monitor) run(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.period)
	defer t.Stop()
	for {
		st := m.c.Statuses(3 * time.Second)
		leader := majorityLeader(st, m.c.N)
		m.mu.Lock()
		m.samples = append(m.samples, Sample{AtNs: time.Now().UnixNano(), Leader: leader, Up: len(st)})
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Wait returns once the monitor has stopped.
func (m *Monitor) Wait() { <-m.done }

// Leader is the latest sample's leader.
func (m *Monitor) Leader() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) == 0 {
		return 0
	}
	return m.samples[len(m.samples)-1].Leader
}

// Samples is every sample so far.
func (m *Monitor) Samples() []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Sample(nil), m.samples...)
}

// majorityLeader is the node that says it leads; when several do (an old
// leader not yet aware), the one most nodes name; 0 when none does or the
// claims tie.
func majorityLeader(st map[int]Status, n int) int {
	votes := map[int]int{}
	for _, s := range st {
		if s.LeaderKnown {
			votes[s.Leader]++
		}
	}
	best, bestVotes, tie := 0, -1, false
	for id, s := range st {
		if !s.IsLeader || s.Fenced {
			continue
		}
		switch v := votes[id]; {
		case v > bestVotes:
			best, bestVotes, tie = id, v, false
		case v == bestVotes:
			tie = true
		}
	}
	if tie {
		return 0
	}
	return best
}

// WaitLeader waits until a majority names a leader that says it leads.
func WaitLeader(c *Cluster, timeout time.Duration) (int, error) {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if l := majorityLeader(c.Statuses(2*time.Second), c.N); l != 0 {
			return l, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return 0, context.DeadlineExceeded
}
