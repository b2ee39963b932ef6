package orderbook

import "testing"

// BenchmarkApply applies a pregenerated realistic stream (about one command
// in five trades). Run with: go test -run '^$' -bench Apply -benchmem ./examples/orderbook
func BenchmarkApply(b *testing.B) {
	g := NewLoadGen(42, LoadGenConfig{})
	e := New(Config{})
	// Warm the book and the pools so the measurement is the steady state.
	var cmd []byte
	for i := 0; i < 100_000; i++ {
		cmd = g.Next(cmd[:0])
		e.Apply(cmd)
	}
	const streamLen = 1 << 20
	stream := make([]byte, 0, streamLen*MaxCommandLen)
	ends := make([]int, 0, streamLen)
	for len(ends) < streamLen {
		stream = g.Next(stream)
		ends = append(ends, len(stream))
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, applied := 0, 0
	for i := 0; i < b.N; i++ {
		k := i % streamLen
		if k == 0 {
			start = 0
		}
		// Past the end of the stream the commands repeat and are rejected
		// as duplicates; keep b.N below streamLen for pure apply cost.
		if _, err := e.Apply(stream[start:ends[k]]); err == nil {
			applied++
		}
		start = ends[k]
	}
	b.StopTimer()
	b.ReportMetric(float64(e.RestingOrders()), "resting")
	_ = applied
}
