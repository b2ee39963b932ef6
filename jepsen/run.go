package jepsen

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
)

// RunOptions shapes one run.
type RunOptions struct {
	Schedule ScheduleOptions
	Clients  int
	Timings  Timings
	// StartTimeout bounds the first election and each wait for a leader.
	StartTimeout time.Duration
	// SettleTimeout bounds the wait, after the last fault, for every node
	// to apply everything committed.
	SettleTimeout time.Duration
	Log           io.Writer
}

// StepResult is one step as it ran.
type StepResult struct {
	*Applied
	HealNs int64
	// FailoverNs: for a step that hit the leader, from the fault to the
	// first order acknowledged by another node (0: none before the heal).
	FailoverNs int64
	Err        string
}

// Result is one run's outcome.
type Result struct {
	Opts      RunOptions
	Steps     []StepResult
	StartNs   int64
	EndNs     int64
	History   []Op
	Samples   []Sample
	Logs      map[int]NodeLog
	Verdict   Verdict
	SettleErr string
}

// Run starts the nodes, runs the workload under the schedule, heals, lets
// the nodes settle, fetches their applied logs and checks them.
func Run(ctx context.Context, c *Cluster, o RunOptions) (*Result, error) {
	steps, err := NewSchedule(o.Schedule)
	if err != nil {
		return nil, err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(o.Log, "%s %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	logf("seed %d, %d nodes, %v of faults, %d steps:", o.Schedule.Seed, c.N, o.Schedule.Duration, len(steps))
	for i, s := range steps {
		logf("  %3d %s", i+1, s)
	}
	if err := c.Start(o.Timings); err != nil {
		return nil, err
	}
	t0 := time.Now()
	leader, err := WaitLeader(c, o.StartTimeout)
	if err != nil {
		return nil, fmt.Errorf("no leader within %v of starting the nodes", o.StartTimeout)
	}
	logf("leader n%d elected %.1f s after the start", leader, time.Since(t0).Seconds())
	if err := c.WriteConfigs(o.Timings, "existing"); err != nil {
		return nil, err
	}
	res := &Result{Opts: o, StartNs: time.Now().UnixNano()}
	mctx, mcancel := context.WithCancel(ctx)
	mon := StartMonitor(mctx, c, 400*time.Millisecond)
	w := NewWorkload(c, o.Clients)
	w.logf = logf
	w.Start(ctx)
	inj := &Injector{c: c}
	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	sleep(5 * time.Second) // orders before the first fault
	for i, s := range steps {
		if ctx.Err() != nil {
			break
		}
		// Each fault starts from a whole cluster: a leader, every node
		// answering and none still rejoining (a second fault during a
		// rejoin takes the majority away, which tests nothing new).
		wt := time.Now()
		l, err := waitWhole(ctx, c, o.StartTimeout)
		if err != nil {
			logf("step %d: cluster not whole after %v: %v", i+1, o.StartTimeout, err)
		} else if d := time.Since(wt); d > time.Second {
			logf("step %d: waited %.1f s for the cluster to be whole", i+1, d.Seconds())
		}
		ap, err := inj.Apply(s, l)
		r := StepResult{Applied: ap}
		if err != nil {
			r.Err = err.Error()
			logf("step %d %s: %v", i+1, s.Kind, err)
		} else {
			logf("step %d %s: %s (leader n%d)", i+1, s.Kind, ap.Desc, l)
		}
		sleep(s.Hold - time.Duration(time.Now().UnixNano()-ap.AtNs))
		if err := inj.Heal(ap); err != nil {
			r.Err += " heal: " + err.Error()
			logf("step %d heal: %v", i+1, err)
		}
		r.HealNs = time.Now().UnixNano()
		res.Steps = append(res.Steps, r)
		sleep(s.Quiet)
	}
	// Everything healed and every node running, then orders keep coming
	// until a leader has acknowledged some under the healed network.
	if err := inj.HealNetwork(); err != nil {
		logf("final heal: %v", err)
	}
	for _, a := range c.Agents {
		a.Signal("CONT")
		if up, err := a.Running(); err == nil && !up {
			logf("n%d was not running: restarting it", a.ID)
			a.Start()
		}
	}
	if ctx.Err() != nil {
		mcancel()
		w.Stop()
		return nil, ctx.Err()
	}
	if _, err := WaitLeader(c, o.StartTimeout); err != nil {
		logf("no leader within %v after the final heal", o.StartTimeout)
	}
	sleep(5 * time.Second)
	w.Stop()
	res.History = w.History()
	res.EndNs = time.Now().UnixNano()
	mcancel()
	mon.Wait()
	res.Samples = mon.Samples()
	if err := settle(ctx, c, res.History, o.SettleTimeout); err != nil {
		res.SettleErr = err.Error()
		logf("settle: %v", err)
	}
	res.Logs = map[int]NodeLog{}
	for id := 1; id <= c.N; id++ {
		lctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		l, err := c.Log(lctx, id)
		cancel()
		if err != nil {
			logf("n%d log: %v (left out of the check)", id, err)
			continue
		}
		res.Logs[id] = l
	}
	if len(res.Logs) == 0 {
		return res, fmt.Errorf("no node served its applied log")
	}
	res.Verdict = Check(res.History, res.Logs, 2*time.Minute)
	res.failovers()
	return res, nil
}

// waitWhole waits until a majority names a leader and every node answers
// having applied what the leader had committed one poll earlier (a node
// restarted without its log is caught up); it returns the leader.
func waitWhole(ctx context.Context, c *Cluster, timeout time.Duration) (int, error) {
	end := time.Now().Add(timeout)
	var last map[int]Status
	var prev consensus.Index
	for time.Now().Before(end) && ctx.Err() == nil {
		st := c.Statuses(3 * time.Second)
		last = st
		l := majorityLeader(st, c.N)
		ok := l != 0 && len(st) == c.N && prev > 0
		for _, s := range st {
			ok = ok && s.Applied >= prev
		}
		if ok {
			return l, nil
		}
		prev = 0
		if l != 0 {
			prev = st[l].Commit
		}
		time.Sleep(500 * time.Millisecond)
	}
	desc := ""
	for id := 1; id <= c.N; id++ {
		if s, ok := last[id]; ok {
			desc += fmt.Sprintf(" n%d applied %d commit %d;", id, s.Applied, s.Commit)
		} else {
			desc += fmt.Sprintf(" n%d did not answer;", id)
		}
	}
	return majorityLeader(last, c.N), fmt.Errorf("leader n%d:%s", majorityLeader(last, c.N), desc)
}

// settle waits until every node answers and has applied the highest
// acknowledged index and the highest commit any node reports.
func settle(ctx context.Context, c *Cluster, h []Op, timeout time.Duration) error {
	var want uint64
	for _, o := range h {
		if o.Acked {
			want = max(want, uint64(o.Index))
		}
	}
	end := time.Now().Add(timeout)
	var last map[int]Status
	for time.Now().Before(end) && ctx.Err() == nil {
		st := c.Statuses(5 * time.Second)
		last = st
		top := want
		for _, s := range st {
			top = max(top, uint64(s.Commit))
		}
		ok := len(st) == c.N
		for _, s := range st {
			if uint64(s.Applied) < top {
				ok = false
			}
		}
		if ok {
			return nil
		}
		time.Sleep(time.Second)
	}
	desc := ""
	for id := 1; id <= c.N; id++ {
		if s, ok := last[id]; ok {
			desc += fmt.Sprintf(" n%d applied %d commit %d;", id, s.Applied, s.Commit)
		} else {
			desc += fmt.Sprintf(" n%d did not answer;", id)
		}
	}
	return fmt.Errorf("nodes not caught up within %v (highest acknowledged %d):%s", timeout, want, desc)
}

func (r *Result) failovers() {
	for i := range r.Steps {
		s := &r.Steps[i]
		if !s.HitsLeader() {
			continue
		}
		for _, o := range r.History {
			if o.Acked && o.RetNs > s.AtNs && o.RetNs <= s.HealNs && o.By != s.Leader {
				if d := o.RetNs - s.AtNs; s.FailoverNs == 0 || d < s.FailoverNs {
					s.FailoverNs = d
				}
			}
		}
	}
}
