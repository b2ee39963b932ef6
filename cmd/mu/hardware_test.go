package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/hwmon"
	"github.com/rdmaconsensus/mu/rdma"
)

// ueCollector stands in for EDAC: one memory controller, with an
// uncorrectable error once ue is set.
type ueCollector struct{ ue atomic.Bool }

func (c *ueCollector) Name() string { return "edac" }
func (c *ueCollector) Collect(_ context.Context, s *hwmon.Snapshot) {
	mc := hwmon.EDACController{Name: "mc0"}
	if c.ue.Load() {
		mc.UECount = 1
	}
	s.EDAC = append(s.EDAC, mc)
	s.Signals = append(s.Signals, hwmon.SignalStatus{Name: "edac", Source: "test", Available: true})
}

func testNodeConfig(t *testing.T, id rdma.NodeID, extra string) Config {
	t.Helper()
	var peers strings.Builder
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&peers, "  - id: %d\n    address: 127.0.0.1:%d\n    client_address: 127.0.0.1:%d\n", i, 1000+i, 2000+i)
	}
	cfg, err := ParseConfig(fmt.Appendf(nil, "id: %d\ncluster_id: 1\npeers:\n%srdma:\n  interface: lo\nsecurity:\n  insecure: true\n%s", id, peers.String(), extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The node config's probe cadence and fail-slow ratios reach consensus.
func TestConsensusConfigLayer2(t *testing.T) {
	cfg := testNodeConfig(t, 1, "timings:\n  probe_interval: 25ms\nhwmon:\n  probe_p99_warn_ratio: 4\n  probe_p99_critical_ratio: 8\n")
	cc := consensusConfig(cfg)
	if cc.ProbeIntervalNs != int64(25*time.Millisecond) {
		t.Errorf("ProbeIntervalNs = %d, want 25ms", cc.ProbeIntervalNs)
	}
	if cc.FailSlow.WarnRatio != 4 || cc.FailSlow.CriticalRatio != 8 {
		t.Errorf("FailSlow ratios = %v/%v, want 4/8", cc.FailSlow.WarnRatio, cc.FailSlow.CriticalRatio)
	}
	if err := cc.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The node's hardware wiring over replicas on the in-process fabric: the
// monitor's probe and log-checksum rows are fed by the running replicas,
// and an uncorrectable memory error on the leader fences it, so it
// refuses proposals with ErrFenced.
func TestHardwareVerdictFencesReplica(t *testing.T) {
	cols := map[rdma.NodeID]*ueCollector{}
	hws := map[rdma.NodeID]*nodeHardware{}
	g, err := newInprocGroupWith(3, PollSpinYield, func(id rdma.NodeID, cc *consensus.Config) error {
		cols[id] = &ueCollector{}
		h, err := newNodeHardware(testNodeConfig(t, id, ""), cc, hwmon.WithCollectors(cols[id]))
		hws[id] = h
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, id := range g.ids {
		hws[id].start(ctx, g.nodes[id].n, log.New(io.Discard, "", 0))
	}

	// Commit through whichever replica leads until every follower has
	// verified slots, then wait for the idle leader's probes.
	signal := func(rep hwmon.Report, name string) string {
		for _, s := range rep.Signals {
			if s.Name == name {
				return s.Note
			}
		}
		return ""
	}
	var leader rdma.NodeID
	deadline := time.Now().Add(20 * time.Second)
	for {
		if time.Now().After(deadline) {
			var reads []uint64
			for _, id := range g.ids {
				reads = append(reads, hws[id].m.Verifier().Counts().ReadsTotal)
			}
			t.Fatalf("leader %d: layer 2 and checksums never fed the monitors: probe %+v, verified reads %v", leader, hws[leader].probeSummary(), reads)
		}
		leader = 0
		for _, id := range g.ids {
			if g.nodes[id].n.IsLeader() {
				leader = id
			}
		}
		if leader == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		verified := true
		for _, id := range g.ids {
			if id != leader && hws[id].m.Verifier().Counts().ReadsTotal == 0 {
				verified = false
			}
		}
		if !verified {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			_, _ = g.nodes[leader].propose(pctx, []byte("verify me"))
			pcancel()
			continue
		}
		// Probes run only while the leader is idle.
		if hws[leader].probeSummary().Samples > 0 &&
			strings.Contains(signal(hws[leader].m.Step(ctx), "probe"), "probes") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, id := range g.ids {
		if rep, _ := hws[id].m.Latest(); rep.Verdict != hwmon.Healthy || g.nodes[id].n.Fenced() {
			t.Fatalf("node %d before the fault: verdict %s, fenced %v: %v", id, rep.Verdict, g.nodes[id].n.Fenced(), rep.Reasons)
		}
	}

	cols[leader].ue.Store(true)
	if rep := hws[leader].m.Step(ctx); rep.Verdict != hwmon.Failed {
		t.Fatalf("verdict with a memory UE: %s %v", rep.Verdict, rep.Reasons)
	}
	for deadline := time.Now().Add(10 * time.Second); !g.nodes[leader].n.Fenced(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node %d: Failed verdict did not fence the replica", leader)
		}
	}
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	if _, err := g.nodes[leader].propose(pctx, []byte("after the UE")); !errors.Is(err, consensus.ErrFenced) {
		t.Fatalf("proposal on the fenced node %d: %v, want ErrFenced", leader, err)
	}
}
