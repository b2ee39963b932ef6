package consensus

import (
	"context"
	"runtime"
)

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

// Run drives the replica in real time until ctx ends: it locks the calling
// goroutine to its OS thread and calls Step with the fabric's clock in a
// loop. It returns ctx's error. Proposals still queued when it returns fail
// with ErrStopped. Step must not be called elsewhere while Run runs.
func (r *Replica) Run(ctx context.Context, mode DriveMode) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	done := ctx.Done()
	for iter := uint64(0); ; iter++ {
		// Checking the context costs a channel poll; every 64 Steps keeps
		// the loop tight and shutdown prompt (well under a millisecond).
		if iter%64 == 0 {
			select {
			case <-done:
				r.stop()
				return ctx.Err()
			default:
			}
		}
		r.Step(r.f.Now())
		if mode == DriveSpinYield {
			runtime.Gosched()
		}
	}
}

// stop fails every queued and in-flight proposal with ErrStopped and
// refuses new ones.
func (r *Replica) stop() {
	r.ring.mu.Lock()
	r.ring.stopped = true
	r.ring.mu.Unlock()
	for r.wLen > 0 {
		w := r.waiters[r.wHead]
		r.wHead = (r.wHead + 1) % len(r.waiters)
		r.wLen--
		r.deliver(w.cell, w.index, ErrStopped)
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
		r.deliver(id, 0, ErrStopped)
	}
}
