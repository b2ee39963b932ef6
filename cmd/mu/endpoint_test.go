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

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
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
	peers := loopbackPeers(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tt := &tcpTarget{ids: g.ids, clients: map[rdma.NodeID]*nodeClient{}}
	var addrs []string
	// Mutual TLS, as a node runs by default: node certificates for the
	// endpoints, a client certificate for the load generator.
	dir := testCerts(t, 3, "loadgen")
	client, err := clustertls.LoadFiles(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client-loadgen.pem"), filepath.Join(dir, "client-loadgen-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	srvs := map[rdma.NodeID]*nodeServer{}
	for _, id := range g.ids {
		cfgPath := filepath.Join(dir, fmt.Sprintf("node%d.yaml", id))
		text := fmt.Sprintf("id: %d\ncluster_id: 1\npeers:\n%srdma:\n  interface: lo\nsecurity:\n  ca: ca.pem\n  cert: node%d.pem\n  key: node%d-key.pem\n", id, peers, id, id)
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := cfg.Credentials()
		if err != nil || creds == nil {
			t.Fatalf("credentials: %v", err)
		}
		srv := &nodeServer{cfg: cfg, self: cfg.Self(), logger: log.New(io.Discard, "", 0), started: time.Now(), ctx: ctx,
			nd: g.nodes[id], creds: creds}
		srvs[id] = srv
		ln, err := net.Listen("tcp", cfg.Self().ClientAddress)
		if err != nil {
			t.Fatal(err)
		}
		go srv.serve(ln)
		tt.clients[id] = newNodeClientDial(cfg.Self().ClientAddress, tlsDial(client, id))
		addrs = append(addrs, cfg.Self().ClientAddress)
	}
	// Without a certificate of the cluster, nothing is answered.
	plain := newNodeClient(addrs[0])
	defer plain.close()
	if _, err := plain.status(ctx); err == nil {
		t.Fatal("a plain-TCP client was answered by a TLS endpoint")
	}
	// A rejoin rebuilds queue pairs: a client, or another node, may not
	// ask for it on a node's behalf.
	var re *endpoint.RemoteError
	if err := tt.clients[g.ids[0]].rejoin(ctx, 3); !errors.As(err, &re) || re.Code != endpoint.CodeRefused {
		t.Errorf("rejoin from a client certificate: %v, want refused", err)
	}
	node2, err := srvs[2].cfg.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	as2 := newNodeClientDial(addrs[0], tlsDial(node2, 1))
	defer as2.close()
	if err := as2.rejoin(ctx, 3); !errors.As(err, &re) || re.Code != endpoint.CodeRefused {
		t.Errorf("rejoin for node 3 from node 2's certificate: %v, want refused", err)
	}
	if err := as2.rejoin(ctx, 2); err != nil {
		t.Errorf("rejoin from node 2 for itself: %v", err)
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
			if g.nodes[id].n.IsLeader() {
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
		if errors.As(lastErr, &nl) && nl.Known && nl.Leader == leader && g.nodes[leader].n.IsLeader() {
			lastErr = nil
			break
		}
		time.Sleep(time.Millisecond)
	}
	if lastErr != nil || leader == 0 {
		t.Fatalf("no follower named the current leader (%d): last answer %v", leader, lastErr)
	}
	var out strings.Builder
	if down := writeStatus(ctx, &out, addrs, tlsDial(client, 0), time.Second); down != 0 {
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

// The node's client endpoint takes its limits from the config: a proposal
// frame larger than the replica accepts, a connection beyond
// client.max_connections and a silent connection past client.idle_timeout
// are all turned away, before the replica is even running.
func TestNodeEndpointAppliesConfigLimits(t *testing.T) {
	peers := loopbackPeers(t, 3)
	cfg, err := ParseConfig(fmt.Appendf(nil, "id: 1\ncluster_id: 1\npeers:\n%srdma:\n  interface: lo\nsecurity:\n  insecure: true\nclient:\n  max_connections: 2\n  idle_timeout: 200ms\n", peers))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &nodeServer{cfg: cfg, self: cfg.Self(), logger: log.New(io.Discard, "", 0), started: time.Now(), ctx: ctx}
	ln, err := net.Listen("tcp", cfg.Self().ClientAddress)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.serve(ln) }()
	defer func() { cancel(); <-done }()

	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	c := newNodeClient(cfg.Self().ClientAddress)
	defer c.close()
	if _, err := c.status(cctx); err != nil {
		t.Fatal(err)
	}
	max := cfg.MaxRequestBytes() - 1
	if _, err := c.propose(cctx, make([]byte, max+1)); !errors.Is(err, consensus.ErrTooLarge) {
		t.Errorf("proposal of %d bytes (largest %d): %v, want ErrTooLarge", max+1, max, err)
	}
	// Two connections fill the endpoint; a third is refused.
	a, b := newNodeClient(cfg.Self().ClientAddress), newNodeClient(cfg.Self().ClientAddress)
	defer a.close()
	defer func() { b.close() }()
	if _, err := a.status(cctx); err != nil {
		t.Fatal(err)
	}
	// The server closed c's connection over the oversized frame and frees
	// its slot on its own goroutine: until then b is the third.
	for until := time.Now().Add(5 * time.Second); ; {
		_, err := b.status(cctx)
		if err == nil {
			break
		}
		if time.Now().After(until) {
			t.Fatal(err)
		}
		b.close()
		b = newNodeClient(cfg.Self().ClientAddress)
		time.Sleep(10 * time.Millisecond)
	}
	var re *endpoint.RemoteError
	if _, err := c.status(cctx); !errors.As(err, &re) || re.Code != endpoint.CodeBusy {
		t.Errorf("third connection: %v, want a busy answer", err)
	}
	// Both go idle and are dropped; the endpoint serves again.
	time.Sleep(400 * time.Millisecond)
	if _, err := c.status(cctx); err != nil {
		t.Errorf("after the idle connections were dropped: %v", err)
	}
}

// testCerts makes a CA, node certificates 1..n and the named client
// certificates in a temporary directory.
func testCerts(t *testing.T, n int, clients ...string) string {
	t.Helper()
	dir := t.TempDir()
	certsIn(t, dir, n, clients...)
	return dir
}

// loopbackPeers is the peers section of a config for n nodes on free
// loopback ports (a bootstrap and a client address each).
func loopbackPeers(t *testing.T, n int) string {
	t.Helper()
	ports, err := freePorts(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	var peers strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&peers, "  - id: %d\n    address: 127.0.0.1:%d\n    client_address: 127.0.0.1:%d\n", i, ports[2*i-2], ports[2*i-1])
	}
	return peers.String()
}
