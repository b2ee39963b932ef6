package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/rdma"
)

// faultKind is how the leader is taken out.
type faultKind int

const (
	faultKill   faultKind = iota // SIGKILL, then restart without its log
	faultFreeze                  // SIGSTOP, then SIGCONT
)

func (k faultKind) String() string {
	if k == faultFreeze {
		return "SIGSTOP"
	}
	return "SIGKILL"
}

// faultResult is one leader failure as the client saw it.
type faultResult struct {
	Kind       faultKind
	Old, New   rdma.NodeID
	FaultNs    int64 // Unix ns just before the signal
	FailoverNs int64 // fault -> first acknowledgement by another leader
	Steps      breakdown
	RecoverNs  int64 // restart or thaw -> the old leader caught up again
}

// chaosOptions shapes a run of faults under a continuous order stream.
type chaosOptions struct {
	seed            uint64
	ordersBefore    int // acknowledged before the first fault
	ordersBetween   int // acknowledged between faults (after recovery)
	failoverWait    time.Duration
	recoverWait     time.Duration
	onFault         func(i int, r faultResult) // progress, may be nil
	skipRecoverWait bool
}

// chaosRun is the outcome of runChaos.
type chaosRun struct {
	Faults []faultResult
	Acks   []ack
	Logs   map[rdma.NodeID]nodeLog
}

// runChaos proposes orders continuously, takes the leader out as plan
// says (each time once ordersBetween more orders are acknowledged),
// brings it back, and at the end checks that every acknowledged order was
// applied on every replica and that their applied logs are identical.
func runChaos(ctx context.Context, g *procGroup, plan []faultKind, o chaosOptions) (chaosRun, error) {
	var run chaosRun
	gen := orderbook.NewLoadGen(o.seed, orderbook.DefaultLoadGenConfig())
	c := newClient(g)
	var (
		mu    sync.Mutex
		acks  []ack
		count atomic.Int64
		halt  atomic.Bool
	)
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	streamErr := make(chan error, 1)
	go func() {
		for !halt.Load() {
			a, err := c.submit(sctx, gen.Next(nil))
			if err != nil {
				if halt.Load() {
					break
				}
				streamErr <- err
				return
			}
			mu.Lock()
			acks = append(acks, a)
			mu.Unlock()
			count.Add(1)
		}
		streamErr <- nil
	}()
	stopStream := func() error {
		halt.Store(true)
		select {
		case err := <-streamErr:
			return err
		case <-time.After(30 * time.Second):
			scancel()
			return <-streamErr
		}
	}
	lastAck := func() ack {
		mu.Lock()
		defer mu.Unlock()
		return acks[len(acks)-1]
	}
	waitCount := func(n int64) error {
		for count.Load() < n {
			select {
			case err := <-streamErr:
				if err == nil {
					err = errors.New("stream stopped")
				}
				streamErr <- err
				return err
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Microsecond):
			}
		}
		return nil
	}

	mark := int64(o.ordersBefore)
	for i, kind := range plan {
		if err := waitCount(mark); err != nil {
			return run, fmt.Errorf("before fault %d: %w", i+1, err)
		}
		old := lastAck().By
		r := faultResult{Kind: kind, Old: old, FaultNs: time.Now().UnixNano()}
		var err error
		if kind == faultKill {
			err = g.kill(old)
		} else {
			err = g.freeze(old)
		}
		if err != nil {
			stopStream()
			return run, fmt.Errorf("fault %d (%s node %d): %w", i+1, kind, old, err)
		}
		// The first acknowledgement from another leader ends the failover.
		deadline := time.Now().Add(o.failoverWait)
		var first *ack
		for first == nil {
			mu.Lock()
			for j := len(acks) - 1; j >= 0 && acks[j].AtNs > r.FaultNs; j-- {
				if acks[j].By != old {
					a := acks[j]
					first = &a
				}
			}
			mu.Unlock()
			if first != nil {
				break
			}
			if time.Now().After(deadline) {
				if kind == faultFreeze {
					g.thaw(old)
				}
				stopStream()
				return run, fmt.Errorf("fault %d (%s node %d): no other leader acknowledged an order within %v", i+1, kind, old, o.failoverWait)
			}
			time.Sleep(50 * time.Microsecond)
		}
		r.New, r.FailoverNs = first.By, first.AtNs-r.FaultNs
		if terms, err := g.terms(ctx, r.New); err == nil {
			if s, ok := termAt(terms, first.AtNs); ok {
				r.Steps = newBreakdown(r.FaultNs, s, first.AtNs)
			}
		}
		// Bring the old leader back and let it catch up.
		t0 := time.Now()
		if kind == faultKill {
			err = g.restart(old)
		} else {
			err = g.thaw(old)
		}
		if err != nil {
			stopStream()
			return run, fmt.Errorf("fault %d: bringing node %d back: %w", i+1, old, err)
		}
		if !o.skipRecoverWait {
			if err := g.waitCaughtUp(ctx, old, o.recoverWait); err != nil {
				stopStream()
				return run, fmt.Errorf("fault %d: %w", i+1, err)
			}
		}
		r.RecoverNs = int64(time.Since(t0))
		run.Faults = append(run.Faults, r)
		if o.onFault != nil {
			o.onFault(i, r)
		}
		mark = count.Load() + int64(o.ordersBetween)
	}
	if err := waitCount(mark); err != nil {
		return run, fmt.Errorf("after the last fault: %w", err)
	}
	if err := stopStream(); err != nil {
		return run, err
	}
	mu.Lock()
	run.Acks = acks
	mu.Unlock()
	var maxIndex consensus.Index
	for _, a := range run.Acks {
		maxIndex = max(maxIndex, a.Index)
	}
	if o.skipRecoverWait {
		// Every node came back; wait for all of them to catch up.
		for _, id := range g.ids {
			if err := g.waitCaughtUp(ctx, id, o.recoverWait); err != nil {
				return run, err
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, o.recoverWait)
	defer cancel()
	logs, err := converged(cctx, g, g.ids, maxIndex)
	if err != nil {
		return run, err
	}
	run.Logs = logs
	return run, verifyLogs(run.Acks, logs)
}

// waitCaughtUp waits until node id answers, advertises itself healthy (a
// replica restarted without its log advertises degraded until a leader
// has caught it up) and has applied what the leader had committed when
// the wait began.
func (g *procGroup) waitCaughtUp(ctx context.Context, id rdma.NodeID, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var target consensus.Index
	var last string
	for time.Now().Before(deadline) {
		if target == 0 {
			// The leader's commit index; the node itself may be the one
			// that leads again (the lowest id takes leadership back).
			for _, o := range g.ids {
				if st, err := g.status(ctx, o); err == nil && st.IsLeader {
					target = st.Commit
				}
			}
		}
		st, err := g.status(ctx, id)
		switch {
		case err != nil:
			last = err.Error()
		case target > 0 && st.Applied >= target && !st.Fenced && st.Health == "healthy":
			// Healthy: no longer rejoining or behind, so it counts in a
			// recovery quorum again and the next fault can be survived.
			return nil
		default:
			last = fmt.Sprintf("applied %d of %d, advertises %s", st.Applied, target, st.Health)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("node %d did not catch up within %v (%s)", id, timeout, last)
}
