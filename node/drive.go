package node

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
)

// spinNodes counts the nodes of this process whose drivers busy-poll.
var spinNodes atomic.Int64

// stopCheckEvery: a spinning driver looks at its stop channel every this
// many Steps, which keeps the loop tight and shutdown well under a
// millisecond.
const stopCheckEvery = 64

func (n *Node) startDriver() {
	ctx, cancel := context.WithCancel(context.Background())
	n.driveStop, n.driveDone = cancel, make(chan struct{})
	go func() {
		defer close(n.driveDone)
		if n.cfg.Poll == PollIdleSleep {
			n.driveIdleSleep(ctx.Done())
		} else {
			n.driveSpin(ctx.Done(), n.cfg.Poll == PollSpinYield)
		}
	}()
}

// driveSpin steps in a loop on a locked OS thread, yielding the
// processor after every Step when yield is set.
func (n *Node) driveSpin(stop <-chan struct{}, yield bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := uint64(0); ; i++ {
		if i%stopCheckEvery == 0 {
			select {
			case <-stop:
				return
			default:
			}
		}
		now := n.f.Now()
		n.r.Step(now)
		n.publishView(now)
		if yield {
			runtime.Gosched()
		}
	}
}

// minSleep: a wait shorter than this is spun (yielding): Go's timers
// cannot wait microseconds.
const minSleep = 20 * time.Microsecond

// maxPreciseSleep: a follower's wait up to this long is slept with
// nanosleep on its locked thread at 1 ns timer slack (~50 µs for a 40 µs
// wait on a 2-core host, where a Go timer takes ~1 ms); longer ones, and
// the leader's (a proposal's kick must wake it), use the timer.
const maxPreciseSleep = time.Millisecond

// driveIdleSleep spins (yielding) while proposals are in flight and
// otherwise sleeps until the wake-up time Step asks for, at most
// IdleSleepMax: a sleeping replica costs almost no CPU, so replicas and
// the kernel's RDMA work share scarce cores fairly.
func (n *Node) driveIdleSleep(stop <-chan struct{}) {
	runtime.LockOSThread() // the timer slack is the thread's
	defer runtime.UnlockOSThread()
	precise := setPreciseTimerSlack()
	maxSleep := n.cfg.idleSleepMax()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		default:
		}
		now := n.f.Now()
		wake := n.r.Step(now)
		n.publishView(now)
		if n.busy.Load() > 0 {
			runtime.Gosched()
			continue
		}
		d := min(time.Duration(wake-n.f.Now()), maxSleep)
		if d < minSleep {
			runtime.Gosched()
			continue
		}
		if precise && d <= maxPreciseSleep && !n.r.IsLeader() {
			preciseSleep(d)
			continue
		}
		t.Reset(d)
		select {
		case <-t.C:
		case <-n.kick:
			if !t.Stop() {
				<-t.C
			}
		case <-stop:
			return
		}
	}
}
