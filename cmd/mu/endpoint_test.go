package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/rdma"
)

// tcpTarget proposes through the nodes' client endpoints.
type tcpTarget struct {
	ids     []rdma.NodeID
	clients map[rdma.NodeID]*nodeClient
}

func (t *tcpTarget) members() []rdma.NodeID { return t.ids }
func (t *tcpTarget) propose(ctx context.Context, id rdma.NodeID, cmd []byte) (consensus.Index, error) {
	return t.clients[id].propose(ctx, cmd)
}

// The client endpoint, served over replicas on the in-process fabric: a
// proposal through TCP commits, a follower names the leader and its
// address, and status and the applied log come back whole.
func TestClientEndpoint(t *testing.T) {
	g, err := newInprocGroup(3, PollSpinYield)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	ports, err := freePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	var peers strings.Builder
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&peers, "  - id: %d\n    address: 127.0.0.1:%d\n    client_address: 127.0.0.1:%d\n", i, ports[2*i-2], ports[2*i-1])
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tt := &tcpTarget{ids: g.ids, clients: map[rdma.NodeID]*nodeClient{}}
	var addrs []string
	for _, id := range g.ids {
		cfg, err := ParseConfig(fmt.Appendf(nil, "id: %d\ncluster_id: 1\npeers:\n%srdma:\n  interface: lo\n", id, peers.String()))
		if err != nil {
			t.Fatal(err)
		}
		srv := &nodeServer{cfg: cfg, self: cfg.Self(), logger: log.New(io.Discard, "", 0), started: time.Now(), ctx: ctx,
			redialing: map[rdma.NodeID]bool{}, nd: g.nodes[id]}
		ln, err := net.Listen("tcp", cfg.Self().ClientAddress)
		if err != nil {
			t.Fatal(err)
		}
		go srv.serve(ln)
		tt.clients[id] = newNodeClient(cfg.Self().ClientAddress)
		addrs = append(addrs, cfg.Self().ClientAddress)
	}
	c := newClient(tt)
	gen := orderbook.NewLoadGen(3, orderbook.DefaultLoadGenConfig())
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	var acks []ack
	for range 50 {
		a, err := c.submit(pctx, gen.Next(nil))
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
	}
	// Leadership may move on a loaded host; a follower's answer must name
	// the replica that leads when it answers.
	var leader rdma.NodeID
	var lastErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		leader = 0
		for _, id := range g.ids {
			if g.nodes[id].r.IsLeader() {
				leader = id
			}
		}
		if leader == 0 {
			continue
		}
		follower := g.ids[0]
		if follower == leader {
			follower = g.ids[1]
		}
		_, lastErr = tt.clients[follower].propose(pctx, gen.Next(nil))
		var nl *consensus.NotLeaderError
		if errors.As(lastErr, &nl) && nl.Known && nl.Leader == leader && g.nodes[leader].r.IsLeader() {
			lastErr = nil
			break
		}
		time.Sleep(time.Millisecond)
	}
	if lastErr != nil || leader == 0 {
		t.Fatalf("no follower named the current leader (%d): last answer %v", leader, lastErr)
	}
	var out strings.Builder
	if down := writeStatus(ctx, &out, addrs, time.Second); down != 0 {
		t.Fatalf("%d nodes did not answer status:\n%s", down, out.String())
	}
	if !strings.Contains(out.String(), "leader") || strings.Count(out.String(), "\n") < 4 {
		t.Errorf("status table:\n%s", out.String())
	}
	la, err := tt.clients[leader].log(pctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyLogs(acks, map[rdma.NodeID]nodeLog{leader: la.Log}); err != nil {
		t.Fatal(err)
	}
	if len(la.Terms) == 0 || la.Terms[len(la.Terms)-1].LeadingAtNs == 0 {
		t.Errorf("leader's term history is empty: %+v", la.Terms)
	}
}
