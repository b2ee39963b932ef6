package inproc

import (
	"context"
	"runtime"
	"time"
)

// Stepper is a driven node, as in the simulator: Step runs when the node
// asked to, and whenever a completion or a remote write reaches it; it
// returns the absolute time (Fabric.Now) at which it next wants to run.
type Stepper interface {
	Step(nowNs int64) (nextWakeNs int64)
}

// DriveOptions tunes Drive.
type DriveOptions struct {
	// SpinNs: a wake-up closer than this is waited for by yielding in a
	// loop rather than on a timer (Go timers are not precise below about a
	// millisecond). 0 always uses the timer; larger values trade CPU for
	// latency.
	SpinNs int64
}

// Drive steps s on the calling goroutine until ctx is done: at the time
// Step asked for, and at once when f signals a completion or a landed remote
// write. It returns ctx's error.
func Drive(ctx context.Context, f *Fabric, s Stepper, o DriveOptions) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	next := f.Now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := f.Now()
		if now >= next {
			next = s.Step(now)
			continue
		}
		wait := next - now
		if wait <= o.SpinNs {
			select {
			case <-f.Wake():
				next = now
			default:
				runtime.Gosched()
			}
			continue
		}
		timer.Reset(time.Duration(wait - o.SpinNs))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.Wake():
			next = f.Now()
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}
