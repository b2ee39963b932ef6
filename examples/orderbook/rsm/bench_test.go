package rsm

import (
	"testing"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
)

// BenchmarkApply measures the adapter on top of the engine (lock, result
// callback). go test -run '^$' -bench . -benchmem ./examples/orderbook/rsm
func BenchmarkApply(b *testing.B) {
	var trades int
	sm := New(orderbook.Config{}, func(_ consensus.Index, _ []byte, r orderbook.Result, _ error) { trades += len(r.Trades) })
	g := orderbook.NewLoadGen(42, orderbook.LoadGenConfig{})
	var cmd []byte
	for i := 0; i < 100_000; i++ {
		cmd = g.Next(cmd[:0])
		sm.Apply(consensus.Index(i+1), cmd)
	}
	const n = 1 << 16
	cmds := make([][]byte, n)
	for i := range cmds {
		cmds[i] = g.Next(nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%n == 0 && i > 0 {
			b.StopTimer()
			for j := range cmds {
				cmds[j] = g.Next(cmds[j][:0])
			}
			b.StartTimer()
		}
		sm.Apply(consensus.Index(100_001+i), cmds[i%n])
	}
}
