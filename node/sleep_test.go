package node

import (
	"runtime"
	"testing"
	"time"
)

// preciseSleep never returns early, signals (the runtime preempts the
// thread with SIGURG) included.
func TestPreciseSleepNotShort(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	setPreciseTimerSlack()
	for _, d := range []time.Duration{20 * time.Microsecond, 40 * time.Microsecond, 300 * time.Microsecond} {
		for range 50 {
			start := time.Now()
			preciseSleep(d)
			if got := time.Since(start); got < d {
				t.Fatalf("slept %v for %v", got, d)
			}
		}
	}
}

// The wait a follower's idle-sleep driver makes for a 40 µs wake-up:
// nanosleep at 1 ns timer slack on a locked thread against time.Sleep.
// The overshoot is reported as µs/op beyond the 40 µs asked.
func BenchmarkSleep40us(b *testing.B) {
	const d = 40 * time.Microsecond
	run := func(b *testing.B, sleep func(time.Duration)) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		setPreciseTimerSlack()
		var over time.Duration
		for b.Loop() {
			start := time.Now()
			sleep(d)
			over += time.Since(start) - d
		}
		b.ReportMetric(float64(over.Microseconds())/float64(b.N), "overshoot-µs/op")
	}
	b.Run("nanosleep", func(b *testing.B) { run(b, preciseSleep) })
	b.Run("time.Sleep", func(b *testing.B) { run(b, time.Sleep) })
}
