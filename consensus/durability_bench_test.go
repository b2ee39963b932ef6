package consensus

import (
	"slices"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// commitLatencies runs a closed loop of n proposals (one in flight) on
// the simulator, each from Submit on the leader to its commit and apply
// there, and returns the latencies in virtual ns.
func commitLatencies(b *testing.B, c *cluster, n int) []int64 {
	w := c.w
	if !w.RunUntil(func() bool { _, ok := c.leader(); return ok }, 50_000_000) {
		b.Fatal("no leader")
	}
	ldr, _ := c.leader()
	lat := make([]int64, 0, n)
	var at int64
	done := false
	c.onReply = func(_ rdma.NodeID, _ uint64, _ Index, err error) {
		if err != nil {
			b.Fatalf("proposal failed: %v", err)
		}
		lat = append(lat, w.Now()-at)
		done = true
	}
	cmd := encodeKV(make([]byte, kvCmdBytes), true, 1, 0, 0)
	for i := 0; i < n; i++ {
		done = false
		at = w.Now()
		if err := c.reps[ldr].Submit(cmd, uint64(i)); err != nil {
			b.Fatal(err)
		}
		if !w.RunUntil(func() bool { return done }, w.Now()+100_000_000) {
			b.Fatal("proposal did not commit within 100 ms")
		}
		w.RunFor(2_000) // idle a little between proposals
	}
	return lat
}

func pct(sorted []int64, p float64) float64 {
	return float64(sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]) / 1000
}

// BenchmarkSimCommitLatency: commit latency (Submit to applied on the
// leader, three replicas, virtual time on the rxe-fitted simulator) in
// memory mode and in sync mode on an NVMe-class disk (15-25 µs flush)
// and a virtio-class disk (0.5-0.9 ms), beside the disk's own flush
// latency in the same run. Reported as p50-µs, p99-µs and flush-p50-µs.
//
//	go test -run '^$' -bench SimCommitLatency ./consensus
func BenchmarkSimCommitLatency(b *testing.B) {
	disks := []struct {
		name string
		dc   sim.DiskConfig
	}{
		{"nvme", sim.DiskConfig{Sync: sim.Latency{BaseNs: 15_000, JitterNs: 10_000}}},
		{"virtio", sim.DiskConfig{Sync: sim.Latency{BaseNs: 500_000, JitterNs: 400_000}}},
	}
	modes := []string{"memory", "sync-nvme", "sync-virtio"}
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			var all []int64
			var flushNs int64
			var flushes uint64
			for i := 0; i < b.N; i++ {
				var c *cluster
				switch mode {
				case "memory":
					c = newCluster(b, uint64(i+1), 3, nil)
				default:
					dc := disks[0].dc
					if mode == "sync-virtio" {
						dc = disks[1].dc
					}
					d := newDurableCluster(b, uint64(i+1), 3, DurabilitySync, dc, nil)
					c = d.cluster
					all = append(all, commitLatencies(b, c, 500)...)
					for _, dk := range d.disks {
						flushNs += dk.FlushNs
						flushes += dk.Flushes
					}
					continue
				}
				all = append(all, commitLatencies(b, c, 500)...)
			}
			slices.Sort(all)
			b.ReportMetric(pct(all, 0.5), "p50-µs")
			b.ReportMetric(pct(all, 0.99), "p99-µs")
			if flushes > 0 {
				b.ReportMetric(float64(flushNs)/float64(flushes)/1000, "flush-mean-µs")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
