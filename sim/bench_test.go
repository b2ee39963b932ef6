package sim

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

// BenchmarkWriteRoundTrip: simulator cost of one signaled 64-byte write,
// post to completion (about four events).
func BenchmarkWriteRoundTrip(b *testing.B) {
	w := New(1, DefaultConfig())
	a := w.AddNode(1, 4096)
	w.AddNode(2, 4096)
	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll})
	c := a.Conn(2, rdma.PlaneReplication)
	wrs := []rdma.WorkRequest{{Op: rdma.OpWrite, Length: 64}}
	var buf [1]rdma.Completion
	done := func() bool { return a.Poll(buf[:]) == 1 }
	b.ReportAllocs()
	for b.Loop() {
		c.Post(wrs)
		w.RunUntil(done, w.Now()+1e9)
	}
	b.ReportMetric(float64(w.Events())/float64(b.N), "events/op")
}
