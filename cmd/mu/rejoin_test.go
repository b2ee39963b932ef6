package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/config"
	"github.com/rdmaconsensus/mu/rdma"
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

// Silence is not an answer: with initial_cluster_state new and no peer
// answering, the node keeps asking instead of starting as an empty voter,
// and a stop while it asks leaves it rejoining.
func TestSilentPeersNeverMakeANewVoter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InitialClusterState = config.ClusterStateNew
	cfg.ID = 1
	for id := 1; id <= 3; id++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nobody answers there
		cfg.Peers = append(cfg.Peers, config.PeerConfig{ID: rdma.NodeID(id), Address: addr, ClientAddress: addr})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var waits int
	got := autoRejoin(cfg, func() bool {
		return clusterHasCommitted(ctx, cfg, nil, func(string, ...any) { waits++ })
	})
	if !got {
		t.Fatal("started as a new voter although no peer answered")
	}
	if waits == 0 {
		t.Fatal("did not wait for a majority of the members to answer")
	}
}
