package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
)

// mu transfer-leader over the client endpoints of an in-process group:
// the node chosen leads afterwards; asking for the node that leads is a
// no-op.
func TestTransferLeaderCommand(t *testing.T) {
	g, err := newInprocGroup(3, PollSpinYield)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	peers := loopbackPeers(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	var addrs []string
	for _, id := range g.ids {
		path := filepath.Join(dir, fmt.Sprintf("node%d.yaml", id))
		text := fmt.Sprintf("id: %d\ncluster_id: 1\npeers:\n%srdma:\n  interface: lo\nsecurity:\n  insecure: true\n", id, peers)
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
	leader := func() rdma.NodeID {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			for _, id := range g.ids {
				if g.nodes[id].n.IsLeader() {
					return id
				}
			}
		}
		t.Fatal("no leader")
		return 0
	}
	var out strings.Builder
	for attempt := 0; ; attempt++ {
		from := leader()
		to := from%3 + 1
		out.Reset()
		err := transferLeader(ctx, &out, addrs, nil, to, 5*time.Second)
		if errors.Is(err, consensus.ErrLeadershipLost) && attempt < 5 {
			// A third member contested the target's election on a loaded
			// host (it knows nothing of the transfer): ask whoever leads.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), fmt.Sprintf("to node %d", to)) && !strings.Contains(out.String(), fmt.Sprintf("node %d already leads", to)) {
			t.Fatalf("output: %q", out.String())
		}
		// The command returned once the target led; its counters are
		// published at the end of its Step.
		for deadline := time.Now().Add(time.Second); g.nodes[to].n.Stats().LeaderTerms == 0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Microsecond)
		}
		if g.nodes[to].n.Stats().LeaderTerms == 0 {
			t.Fatalf("the transfer to node %d returned but it never led", to)
		}
		break
	}
	// Asking for the node that leads changes nothing (leadership may
	// still move by itself on a loaded host: then ask again).
	for attempt := 0; ; attempt++ {
		var now rdma.NodeID
		for _, a := range queryStatus(ctx, addrs, nil, time.Second) {
			if a.err == nil && a.st.IsLeader {
				now = a.st.ID
			}
		}
		out.Reset()
		err := transferLeader(ctx, &out, addrs, nil, now, time.Second)
		if (err != nil || !strings.Contains(out.String(), "already leads")) && attempt < 5 {
			continue
		}
		if err != nil || !strings.Contains(out.String(), "already leads") {
			t.Fatalf("transfer to the leader %d: %v, %q", now, err, out.String())
		}
		return
	}
}
