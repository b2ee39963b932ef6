package sim

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

// TestSwarmPlanRespectsOptions replays plans on a bare world and checks, at
// every fault, what the options promise.
func TestSwarmPlanRespectsOptions(t *testing.T) {
	kinds := map[FaultKind]int{}
	Seeds(t, 300, func(t *testing.T, seed uint64) {
		w := New(seed, DefaultConfig())
		ids := []rdma.NodeID{1, 2, 3, 4, 5}
		for _, id := range ids {
			w.AddNode(id, 4096)
		}
		w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll})
		o := SwarmOptions{Nodes: ids, StartNs: 1000, EndNs: 1_000_000, MaxFaults: 30, KeepMajority: true, RestartAtEnd: seed%2 == 0, FlipLo: 2048, FlipHi: 4096}
		plan := Swarm(w.Rand(9), o)
		if again := Swarm(w.Rand(9), o); !reflect.DeepEqual(plan, again) {
			t.Fatal("same rng state, different plans")
		}
		if len(plan.Faults) == 0 || plan.Faults[len(plan.Faults)-1].AtNs != o.EndNs {
			t.Fatalf("plan does not end with the clearing at EndNs:\n%v", plan)
		}
		clean := append([]byte(nil), w.Node(1).Bytes()[:2048]...)
		for i, f := range plan.Faults {
			if i > 0 && f.AtNs < plan.Faults[i-1].AtNs {
				t.Fatalf("faults out of order:\n%v", plan)
			}
			if f.Kind == FaultCrash {
				t.Fatalf("memory loss without AllowMemoryLoss:\n%v", plan)
			}
			kinds[f.Kind]++
			w.Run(f.AtNs)
			f.Apply(w)
			down := 0
			for _, n := range w.Nodes() {
				if n.Crashed() || n.Paused() {
					down++
				}
			}
			if down > (len(ids)-1)/2 {
				t.Fatalf("%d of %d nodes down after %v:\n%v", down, len(ids), f, plan)
			}
		}
		for _, n := range w.Nodes() {
			if n.Paused() || (o.RestartAtEnd && n.Crashed()) {
				t.Fatalf("node %d still down at the end:\n%v", n.ID(), plan)
			}
		}
		for _, a := range ids {
			for _, b := range ids {
				if a != b && !w.Node(a).Crashed() && !w.Node(b).Crashed() && !w.Connected(a, b) {
					t.Fatalf("%d-%d still cut at the end", a, b)
				}
			}
		}
		if string(w.Node(1).Bytes()[:2048]) != string(clean) && !strings.Contains(plan.String(), "crash") {
			t.Fatal("a bit flip hit outside [FlipLo, FlipHi)")
		}
	})
	for _, k := range []FaultKind{FaultCrashKeepMemory, FaultRestart, FaultPause, FaultResume, FaultSlow, FaultLinkDelay, FaultLoss, FaultCut, FaultCutBoth, FaultPartition, FaultHealNetwork, FaultFlipBit} {
		if kinds[k] == 0 && !t.Failed() && len(kinds) > 5 {
			t.Errorf("no %v fault in 300 plans", k)
		}
	}
}
