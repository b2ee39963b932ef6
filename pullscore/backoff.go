package pullscore

// maxBackoffFactor caps the gap between Resets of one connection at this
// multiple of the configured base interval.
const maxBackoffFactor = 64

// backoff spaces out Resets of one connection, each of which costs its
// caller ~540 µs of CPU on rxe. The first Reset is immediate. A Reset that
// follows the previous one within twice the current gap means the
// connection keeps breaking (a peer that is gone, or one that keeps
// writing without permission), so the gap doubles, up to maxBackoffFactor
// times the base; after a quiet spell the gap starts again from the base.
type backoff struct {
	nextNs, lastNs, gapNs int64
}

// ready reports whether a Reset may be done at now.
func (b *backoff) ready(now int64) bool { return now >= b.nextNs }

// record notes a Reset done at now.
func (b *backoff) record(now, baseNs int64) {
	if b.gapNs == 0 || now-b.lastNs > 2*b.gapNs {
		b.gapNs = baseNs
	} else {
		b.gapNs = min(2*b.gapNs, baseNs*maxBackoffFactor)
	}
	b.lastNs, b.nextNs = now, now+b.gapNs
}
