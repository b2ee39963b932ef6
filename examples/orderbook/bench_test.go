package orderbook

import "testing"

// BenchmarkApply applies a realistic generated stream in steady state:
// about one command in nine trades and one in five is rejected (mostly a
// cancel of an order that has already filled). Generation happens outside
// the timer.
//
//	go test -run '^$' -bench Apply -benchmem ./examples/orderbook
func BenchmarkApply(b *testing.B) {
	g := NewLoadGen(42, LoadGenConfig{})
	e := New(Config{})
	var cmd []byte
	for i := 0; i < 100_000; i++ { // warm the book and the pools
		cmd = g.Next(cmd[:0])
		e.Apply(cmd)
	}
	const chunkLen = 1 << 16
	stream := make([]byte, 0, chunkLen*MaxCommandLen)
	ends := make([]int, 0, chunkLen)
	fill := func() {
		stream, ends = stream[:0], ends[:0]
		for len(ends) < chunkLen {
			stream = g.Next(stream)
			ends = append(ends, len(stream))
		}
	}
	fill()
	b.ReportAllocs()
	b.ResetTimer()
	start, k := 0, 0
	for i := 0; i < b.N; i++ {
		if k == chunkLen {
			b.StopTimer()
			fill()
			start, k = 0, 0
			b.StartTimer()
		}
		e.Apply(stream[start:ends[k]])
		start = ends[k]
		k++
	}
}
