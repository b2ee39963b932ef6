package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
)

// serveGroup serves each replica of g on the client endpoint its config
// file (peers, then extra) names, and returns the endpoints.
func serveGroup(t *testing.T, ctx context.Context, g *inprocGroup, extra string) []string {
	t.Helper()
	peers := loopbackPeers(t, len(g.ids))
	dir := t.TempDir()
	var addrs []string
	for _, id := range g.ids {
		path := filepath.Join(dir, fmt.Sprintf("node%d.yaml", id))
		text := fmt.Sprintf("id: %d\ncluster_id: 1\npeers:\n%s%srdma:\n  interface: lo\nsecurity:\n  insecure: true\n", id, peers, extra)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		srv := &nodeServer{cfg: cfg, self: cfg.Self(), logger: log.New(io.Discard, "", 0), started: time.Now(), ctx: ctx, nd: g.nodes[id]}
		ln, err := net.Listen("tcp", cfg.Self().ClientAddress)
		if err != nil {
			t.Fatal(err)
		}
		go srv.serve(ln)
		addrs = append(addrs, cfg.Self().ClientAddress)
	}
	return addrs
}

// mu member add / remove / list over the client endpoints of an
// in-process group of three voters and a learner: node 4 replaces node 1.
func TestMemberCommands(t *testing.T) {
	g, err := newInprocGroupWith(4, PollSpinYield, func(_ rdma.NodeID, c *consensus.Config) error {
		c.Voters = []rdma.NodeID{1, 2, 3}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := serveGroup(t, ctx, g, "voters: [1, 2, 3]\n")
	var out strings.Builder
	step := func(add bool, id rdma.NodeID) {
		t.Helper()
		for attempt := 0; ; attempt++ {
			out.Reset()
			err := changeMember(ctx, &out, addrs, nil, add, id, 20*time.Second)
			if err == nil {
				if !strings.Contains(out.String(), "in force") {
					t.Fatalf("output: %q", out.String())
				}
				return
			}
			// Between the status and the request leadership may move on a
			// loaded host; a change a deposed leader wrote may be in force.
			if attempt > 10 {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
			for _, nid := range g.ids {
				if n := g.nodes[nid].n; n.IsLeader() && slices.Contains(n.Voters(), id) == add {
					return
				}
			}
		}
	}
	step(true, 4)
	step(false, 1)
	want := []rdma.NodeID{2, 3, 4}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		out.Reset()
		if err := listMembers(ctx, &out, addrs, nil); err != nil {
			t.Fatal(err)
		}
		if strings.Count(out.String(), "voters 2 3 4") == 4 && strings.Contains(out.String(), "node 1 (learner)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member list after replacing 1 with 4:\n%s", out.String())
		}
	}
	for _, id := range g.ids {
		if got := g.nodes[id].n.Voters(); !slices.Equal(got, want) {
			t.Errorf("node %d: voters %v", id, got)
		}
	}
	if err := changeMember(ctx, &out, addrs, nil, false, 2, time.Second); err == nil || !strings.Contains(err.Error(), "fewer than 3") {
		t.Errorf("removing down to two voters: %v", err)
	}
}
