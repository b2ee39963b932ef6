package main

import (
	"context"
	"errors"
	"fmt"
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := serveGroup(t, ctx, g, "")
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
		if (errors.Is(err, consensus.ErrLeadershipLost) || errors.Is(err, errNoLeader)) && attempt < 5 {
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
