package consensus

import (
	"context"
	"errors"
	"runtime"
	"testing"
)

// Busy-polling drivers that would take every Go processor are refused at
// start instead of stalling proposals silently.
func TestBusyPollNeedsASpareProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	if err := CheckBusyPoll(1); err != nil {
		t.Fatalf("one poller, GOMAXPROCS 2: %v", err)
	}
	if err := CheckBusyPoll(2); !errors.Is(err, ErrTooFewProcs) {
		t.Fatalf("two pollers, GOMAXPROCS 2: %v, want ErrTooFewProcs", err)
	}
	runtime.GOMAXPROCS(1)
	c := newCluster(t, 1, 3, nil)
	r := c.reps[1]
	if err := r.Run(context.Background(), DriveBusyPoll); !errors.Is(err, ErrTooFewProcs) {
		t.Fatalf("Run busy-polling with GOMAXPROCS 1: %v, want ErrTooFewProcs", err)
	}
	if n := busyPollers.Load(); n != 0 {
		t.Fatalf("%d busy pollers counted after a refused Run", n)
	}
	// Yielding drivers share processors: not refused.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx, DriveSpinYield); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run spin-yield: %v", err)
	}
}
