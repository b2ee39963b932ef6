package inproc

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/conformance"
)

// BenchmarkWritePoll: one signaled 64-byte write and its completion.
func BenchmarkWritePoll(b *testing.B) {
	c := backend{}.Start(b, conformance.Options{Nodes: 2, RegionBytes: 4096, TransportTimeoutNs: 1e9}).(cluster)
	f := c.net.Node(1)
	conn := f.Conn(2, rdma.PlaneReplication)
	wrs := []rdma.WorkRequest{{Op: rdma.OpWrite, Length: 64}}
	var buf [1]rdma.Completion
	b.ReportAllocs()
	for b.Loop() {
		conn.Post(wrs)
		for f.Poll(buf[:]) == 0 {
		}
	}
}
