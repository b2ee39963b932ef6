package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

// BenchmarkReads times a linearizable read on the leader of 3 replicas
// over rdma/inproc (spin-yield drivers) beside a proposal of the same
// group: a read under the lease (answered locally), a read index
// (leadership confirmed by one round of RDMA reads to a majority), and a
// proposal (committed and applied). Reported: p50 and p99 in µs.
//
//	go test -run '^$' -bench Reads -benchtime 20000x ./node
func BenchmarkReads(b *testing.B) {
	for _, bc := range []struct {
		name    string
		leaseNs int64
		op      func(ctx context.Context, n *Node) error
	}{
		{"lease", 20_000_000, func(ctx context.Context, n *Node) error { _, err := n.ReadIndex(ctx); return err }},
		{"read-index", 0, func(ctx context.Context, n *Node) error { _, err := n.ReadIndex(ctx); return err }},
		{"propose", 0, func(ctx context.Context, n *Node) error {
			_, _, err := n.Propose(ctx, make([]byte, 64), nil)
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ids := []rdma.NodeID{1, 2, 3}
			cc := relaxed()
			cc.ReadLeaseNs = bc.leaseNs
			net, fabrics, err := InprocFabrics(ids, cc)
			if err != nil {
				b.Fatal(err)
			}
			nodes := make([]*Node, 0, len(ids))
			b.Cleanup(func() {
				for _, n := range nodes {
					n.Close()
				}
				net.Close()
			})
			for _, id := range ids {
				cfg := DefaultConfig()
				cfg.ID, cfg.Consensus, cfg.Fabric, cfg.StateMachine = id, cc, fabrics[id], &kvSM{}
				cfg.Consensus.Members = ids
				n, err := Start(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				nodes = append(nodes, n)
			}
			ctx := context.Background()
			var leader *Node
			for deadline := time.Now().Add(30 * time.Second); leader == nil && time.Now().Before(deadline); {
				for _, n := range nodes {
					if n.IsLeader() && n.Barrier(ctx) == nil {
						leader = n
						break
					}
				}
			}
			if leader == nil {
				b.Fatal("no leader within 30 s")
			}
			if bc.leaseNs > 0 {
				// The lease starts with the first confirmation by a majority.
				for deadline := time.Now().Add(5 * time.Second); ; {
					if _, ok := leader.r.LeaseRead(); ok {
						break
					}
					if time.Now().After(deadline) {
						b.Fatal("the leader holds no lease 5 s after it leads")
					}
					leader.Barrier(ctx)
				}
			}
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := bc.op(ctx, leader); err != nil {
					b.Fatalf("op %d: %v", i, err)
				}
				took = append(took, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2])/1e3, "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100])/1e3, "p99-µs")
		})
	}
}
