//go:build !linux

package node

import "time"

// preciseSleep is time.Sleep where nanosleep's timer slack cannot be set.
func preciseSleep(d time.Duration) { time.Sleep(d) }

// setPreciseTimerSlack reports that precise sleeping is not available.
func setPreciseTimerSlack() bool { return false }
