package hwmon

import "time"

// counterWindow turns samples of a cumulative counter into "increments
// within the last window". A sample lower than the previous one is a
// counter reset (driver reload, reset_counters, device re-enumerated): the
// new value is counted as fresh increments, never as a negative rate.
type counterWindow struct {
	seen  bool
	last  uint64
	incs  []increment
	limit time.Duration
}

type increment struct {
	at time.Time
	n  uint64
}

// counterUpdate reports what one sample did to the window.
type counterUpdate struct {
	first bool   // first sample: establishes the base, counts nothing
	reset bool   // went backwards
	prev  uint64 // previous value (valid when reset)
}

func newCounterWindow(window time.Duration) *counterWindow {
	return &counterWindow{limit: window}
}

func (c *counterWindow) update(v uint64, now time.Time) counterUpdate {
	var u counterUpdate
	var delta uint64
	switch {
	case !c.seen:
		u.first = true
		c.seen = true
	case v < c.last:
		u.reset, u.prev = true, c.last
		delta = v
	default:
		delta = v - c.last
	}
	c.last = v
	c.prune(now)
	if delta > 0 {
		// Coalesce increments closer than 1/128 of the window so a busy
		// counter sampled every second for a day stays small.
		if n := len(c.incs); n > 0 && now.Sub(c.incs[n-1].at) < c.limit/128 {
			c.incs[n-1].n += delta
		} else {
			c.incs = append(c.incs, increment{at: now, n: delta})
		}
	}
	return u
}

func (c *counterWindow) prune(now time.Time) {
	cut := 0
	for cut < len(c.incs) && now.Sub(c.incs[cut].at) >= c.limit {
		cut++
	}
	if cut > 0 {
		c.incs = append(c.incs[:0], c.incs[cut:]...)
	}
}

// sum is the increments within the window ending at now.
func (c *counterWindow) sum(now time.Time) uint64 {
	var s uint64
	for _, in := range c.incs {
		if now.Sub(in.at) < c.limit {
			s += in.n
		}
	}
	return s
}
