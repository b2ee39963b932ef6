package node

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// preciseSleep sleeps the calling OS thread for d with nanosleep. The
// caller has locked its goroutine to the thread and called
// setPreciseTimerSlack on it: the kernel then wakes it within tens of
// microseconds of d, where a Go timer (time.Sleep) wakes it up to a
// millisecond late.
func preciseSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for {
		var left unix.Timespec
		err := unix.Nanosleep(&ts, &left)
		if !errors.Is(err, unix.EINTR) {
			return
		}
		ts = left // a signal (the Go runtime's preemption) cut it short
	}
}

// setPreciseTimerSlack sets the calling thread's timer slack to 1 ns (the
// default 50 µs lets the kernel coalesce wake-ups that late). It reports
// whether the kernel took it.
func setPreciseTimerSlack() bool {
	return unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0) == nil
}
