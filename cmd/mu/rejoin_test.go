package main

import (
	"testing"

	"github.com/rdmaconsensus/mu/config"
)

// A node with an empty log votes only at a new cluster's first start while
// no peer has committed; silent (slow) peers never make it a voter.
func TestAutoRejoin(t *testing.T) {
	for _, tc := range []struct {
		state     string
		committed bool
		want      bool
	}{
		{config.ClusterStateExisting, false, true}, // peers slow or down: still rejoins
		{config.ClusterStateExisting, true, true},
		{config.ClusterStateNew, false, false}, // first start
		{config.ClusterStateNew, true, true},   // "new" left on after the first start
	} {
		cfg := DefaultConfig()
		cfg.InitialClusterState = tc.state
		asked := false
		got := autoRejoin(cfg, func() bool { asked = true; return tc.committed })
		if got != tc.want {
			t.Errorf("initial_cluster_state %s, peers committed %v: rejoin %v, want %v", tc.state, tc.committed, got, tc.want)
		}
		if tc.state == config.ClusterStateExisting && asked {
			t.Errorf("initial_cluster_state existing: asked the peers; the answer must not matter")
		}
	}
}
