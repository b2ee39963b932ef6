// Package backoff spaces out connection resets, which cost hundreds of
// microseconds of CPU each on rxe.
package backoff

// MaxFactor caps the gap between Resets of one connection at this
// multiple of the configured base interval.
const MaxFactor = 64

// Backoff spaces out Resets of one connection, each of which costs its
// caller ~540 µs of CPU on rxe. A connection that breaks again within the
// base interval of its last Reset is being broken on purpose or by a
// persistent fault (a deposed leader that keeps writing without
// permission): the gap before the next Reset doubles each time, up to
// MaxFactor times the base. A connection that stayed up longer than
// the base (a peer that died, detected by the transport timeout, which is
// already slow) is reset again after the base gap, so recovery after the
// fault ends is never delayed by backoff built up from unrelated breaks.
type Backoff struct {
	nextNs, lastNs, gapNs int64
	// brokenNs is when the connection was first found broken after the
	// last Reset; -1 when not yet.
	brokenNs int64
}

// Broken notes that the connection is found broken at now and reports
// whether a Reset may be done now.
func (b *Backoff) Broken(now int64) bool {
	if b.gapNs == 0 || b.brokenNs < b.lastNs {
		b.brokenNs = now
	}
	return now >= b.nextNs
}

// Record notes a Reset done at now.
func (b *Backoff) Record(now, baseNs int64) {
	if b.gapNs != 0 && b.brokenNs-b.lastNs < baseNs {
		b.gapNs = min(2*b.gapNs, baseNs*MaxFactor)
	} else {
		b.gapNs = baseNs
	}
	b.lastNs, b.nextNs, b.brokenNs = now, now+b.gapNs, now-1
}
