package consensus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
)

// ErrTooFewProcs: busy-polling drivers would leave the rest of the
// program without a Go processor (see CheckBusyPoll).
var ErrTooFewProcs = errors.New("consensus: too few Go processors for busy-polling drivers")

// busyPollers counts the Runs in DriveBusyPoll in this process.
var busyPollers atomic.Int64

// CheckBusyPoll reports whether pollers busy-polling drivers can run in
// this process: each owns a Go processor for as long as it runs, and
// proposers, timers and the fabric need at least one more. With fewer,
// proposals stall without an error, so Run in DriveBusyPoll refuses to
// start; call it first to refuse a configuration before anything starts.
func CheckBusyPoll(pollers int) error {
	if procs := runtime.GOMAXPROCS(0); procs < pollers+1 {
		return fmt.Errorf("%w: %d busy-polling drivers need GOMAXPROCS >= %d, it is %d; drive with DriveSpinYield or raise GOMAXPROCS",
			ErrTooFewProcs, pollers, pollers+1, procs)
	}
	return nil
}

// DriveMode selects how Run spends the time between Steps.
type DriveMode uint8

const (
	// DriveBusyPoll steps in a tight loop on a locked OS thread: the lowest
	// latency, at the price of one core per replica. Followers notice new
	// slots only by polling, and Go's timers cannot wait microseconds.
	DriveBusyPoll DriveMode = iota
	// DriveSpinYield steps in a loop but yields the processor
	// (runtime.Gosched) after every Step, for hosts with fewer cores than
	// busy loops. Latency grows by the scheduler's turn-around.
	DriveSpinYield
)

// Run drives the replica in real time until ctx ends or Close is called:
// it locks the calling goroutine to its OS thread and calls Step with the
// fabric's clock in a loop. It returns ctx's error, or ErrClosed after
// Close, or ErrRunning if another Run drives the replica, or at once
// ErrTooFewProcs when DriveBusyPoll would take the last Go processor (see
// CheckBusyPoll). Proposals still
// queued when ctx ends fail with ErrStopped (after Close, ErrClosed).
// Step must not be called elsewhere while Run runs.
func (r *Replica) Run(ctx context.Context, mode DriveMode) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	if r.closing.Load() {
		return ErrClosed
	}
	if mode == DriveBusyPoll {
		n := busyPollers.Add(1)
		defer busyPollers.Add(-1)
		if err := CheckBusyPoll(int(n)); err != nil {
			return err
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Held for the whole run: Close waits on it, so once Close returns
	// no Step touches the fabric's memory.
	r.stepMu.Lock()
	defer r.stepMu.Unlock()
	done := ctx.Done()
	for iter := uint64(0); ; iter++ {
		// Checking costs a channel poll; every 64 Steps keeps the loop
		// tight and shutdown prompt (well under a millisecond).
		if iter%64 == 0 {
			if r.closing.Load() {
				return ErrClosed // Close fails what is queued
			}
			select {
			case <-done:
				r.stop(ErrStopped)
				return ctx.Err()
			default:
			}
		}
		r.step(r.f.Now())
		if mode == DriveSpinYield {
			runtime.Gosched()
		}
	}
}

// Close stops the replica for good: it makes Run return and waits for it
// (and for any Step in progress), then fails every queued and in-flight
// proposal with ErrClosed; later proposals fail with ErrClosed and Step
// does nothing. Once it returns no Step touches the fabric, so the fabric
// may be closed. It is idempotent and safe from any goroutine except from
// inside a Step (a StateMachine or Config callback), where it would wait
// for itself. It does not close the fabric, which the caller owns.
func (r *Replica) Close() error {
	r.closing.Store(true)
	r.isLeader.Store(false) // refused from now on; peers elect another
	r.stepMu.Lock()
	defer r.stepMu.Unlock()
	if !r.closed {
		r.closed = true
		r.stop(ErrClosed)
	}
	return nil
}

// stop fails every queued and in-flight proposal with err and refuses new
// ones with it. The caller holds stepMu.
func (r *Replica) stop(err error) {
	r.ring.mu.Lock()
	if r.ring.stopErr == nil || err == ErrClosed {
		r.ring.stopErr = err
	}
	r.ring.mu.Unlock()
	r.reads.mu.Lock()
	if r.reads.stopErr == nil || err == ErrClosed {
		r.reads.stopErr = err
	}
	r.reads.mu.Unlock()
	r.failReads(err)
	if req := r.xferReq.Swap(0); req != 0 {
		r.xfer = transfer{gen: req >> 8, to: r.cfg.Members[int(req&0xff)-1]}
		r.finishTransfer(err)
	} else if r.xfer.active {
		r.finishTransfer(err)
	}
	r.finishConf(err)
	if req := r.confReq.Swap(0); req != 0 {
		r.conf = confChange{active: true, gen: req >> 8}
		r.finishConf(err)
	}
	for r.wLen > 0 {
		w := r.waiters[r.wHead]
		r.wHead = (r.wHead + 1) % len(r.waiters)
		r.wLen--
		r.deliver(w.cell, w.index, err)
	}
	for {
		r.ring.mu.Lock()
		id, ok := r.ring.peek()
		if ok {
			r.ring.pop()
		}
		r.ring.mu.Unlock()
		if !ok {
			return
		}
		r.deliver(id, 0, err)
	}
}
