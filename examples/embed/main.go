// Command embed is a minimal matching service that links mu as a library
// (package node): three replicas of an order book in this process, each
// with its own RDMA fabric on one device and bootstrapped over loopback
// TCP, or over the in-process fabric where there is no RDMA device. It
// times each order unreplicated (the matching engine alone) and
// replicated (Propose on the leader: committed on a majority, applied,
// fills returned), with the same orders in the same run, and checks that
// both produced the same fills.
//
// `embed serve` runs one replica as a process of its own behind a TCP
// client endpoint (see serve.go): the three-process test kills its leader.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/node"
	"github.com/rdmaconsensus/mu/rdma"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serve(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "embed serve:", err)
			os.Exit(1)
		}
		return
	}
	var (
		orders = flag.Int("orders", 20000, "orders to time, in each mode")
		fabric = flag.String("fabric", "auto", "verbs (RDMA device), inproc (no RDMA), or auto: verbs when a device exists")
		device = flag.String("device", "", "RDMA device (default: the first)")
		poll   = flag.String("poll", "spin-yield", "replica drivers: spin (a core each), spin-yield, or idle-sleep (emulated hosts: sleep unless proposals are in flight)")
		read   = flag.Duration("read-interval", 0, "heartbeat read period of the failure detector (0: the default, tens of µs; emulated hosts need milliseconds)")
		elect  = flag.Duration("election-timeout", 0, "bound on each leader-change step (0: the default)")
		auth   = flag.String("auth", "tls", "verbs bootstrap: tls (mutual TLS with credentials made for this run), insecure, or both (one replicated row each, same orders, to show authentication stays off the commit path)")
	)
	flag.Parse()
	cc := consensus.DefaultConfig()
	if *read > 0 {
		cc.PullScore.ReadIntervalNs = int64(*read)
		cc.PullScore.BeatIntervalNs = min(cc.PullScore.BeatIntervalNs, int64(*read)/2)
	}
	if *elect > 0 {
		cc.ElectionTimeoutNs = int64(*elect)
	}
	if err := run(cc, *orders, *fabric, *device, *poll, *auth); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

func run(cc consensus.Config, orders int, fabric, device, poll, auth string) error {
	if orders < 1 {
		return fmt.Errorf("-orders: %d must be at least 1", orders)
	}
	pm := node.PollSpinYield
	switch poll {
	case "spin":
		pm = node.PollSpin
	case "idle-sleep":
		pm = node.PollIdleSleep
	case "spin-yield":
	default:
		return fmt.Errorf("-poll: %q is not spin, spin-yield or idle-sleep", poll)
	}
	auths := []string{auth}
	switch auth {
	case "tls", "insecure":
	case "both":
		auths = []string{"tls", "insecure"}
	default:
		return fmt.Errorf("-auth: %q is not tls, insecure or both", auth)
	}
	if fabric == "auto" {
		fabric = "inproc"
		if devs, _ := filepath.Glob("/sys/class/infiniband/*"); len(devs) > 0 {
			fabric = "verbs"
		}
	}
	if fabric == "inproc" {
		auths = []string{"none"} // no bootstrap: the fabric is connected in memory
	}
	cmds := make([][]byte, orders)
	gen := orderbook.NewLoadGen(1, orderbook.DefaultLoadGenConfig())
	for i := range cmds {
		cmds[i] = gen.Next(nil)
	}

	// Unreplicated: the same book, applied directly.
	alone, aloneFills := make(latencies, 0, orders), make([][]byte, orders)
	b := newBook()
	buf := make([]byte, 0, 4096)
	for i, cmd := range cmds {
		start := time.Now()
		buf = b.ApplyResult(consensus.Index(i+1), cmd, buf[:0])
		alone = append(alone, time.Since(start))
		aloneFills[i] = slices.Clone(buf)
	}

	type row struct {
		name string
		l    latencies
	}
	rows := []row{{"unreplicated", alone}}
	for _, a := range auths {
		replicated, err := replicate(cc, cmds, aloneFills, fabric, device, pm, a)
		if err != nil {
			return err
		}
		name := "replicated"
		if len(auths) > 1 {
			name += ", " + a
		}
		rows = append(rows, row{name, replicated})
	}
	fmt.Printf("%d orders (same orders every way; per-order latency, call to fills in hand)\n", orders)
	fmt.Printf("%-21s | %9s | %9s | %9s | %9s\n", "", "mean", "p50", "p90", "p99")
	for _, r := range rows {
		fmt.Printf("%-21s | %9s | %9s | %9s | %9s\n", r.name, us(r.l.mean()), us(r.l.at(.5)), us(r.l.at(.9)), us(r.l.at(.99)))
	}
	last := rows[len(rows)-1].l
	fmt.Printf("replication adds %s at the median; every order's fills identical to the book's alone: OK\n",
		us(last.at(.5)-alone.at(.5)))
	return nil
}

// replicate starts a group with the given bootstrap authentication, times
// every order proposed on its leader, checks each order's fills against the
// book's alone, and closes the group.
func replicate(cc consensus.Config, cmds, aloneFills [][]byte, fabric, device string, pm node.PollMode, auth string) (latencies, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	g, desc, err := startGroup(ctx, cc, fabric, device, pm, auth)
	if err != nil {
		return nil, err
	}
	defer g.close()
	leader, err := g.leader(ctx)
	if err != nil {
		return nil, err
	}
	replicated := make(latencies, 0, len(cmds))
	buf := make([]byte, 0, 4096)
	resent, retried := 0, false
	for i := 0; i < len(cmds); {
		start := time.Now()
		_, fills, err := leader.Propose(ctx, cmds[i], buf)
		el := time.Since(start)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("order %d: %w", i+1, err)
			}
			// Not the leader (written nowhere) or leadership lost (outcome
			// unknown): send it again to whoever leads now; the book answers
			// a copy of an order it executed with the first execution's fills.
			resent++
			if leader, err = g.leader(ctx); err != nil {
				return nil, err
			}
			retried = true
			continue
		}
		if !retried {
			replicated = append(replicated, el) // a retried order's time is the failover's
		}
		retried = false
		if !bytes.Equal(fills, aloneFills[i]) {
			return nil, fmt.Errorf("order %d: replicated fills %x differ from the book's alone %x", i+1, fills, aloneFills[i])
		}
		buf = fills
		i++
	}
	fmt.Printf("group: %s, leader %d\n", desc, leader.ID())
	if resent > 0 {
		fmt.Printf("%d sends went again to a new leader (leadership moved); those orders are not in its row\n", resent)
	}
	return replicated, nil
}

// group is three replicas of the book in this process.
type group struct {
	nodes []*node.Node
	net   interface{ Close() error } // the in-process network, when used
}

func startGroup(ctx context.Context, cc consensus.Config, fabric, device string, pm node.PollMode, auth string) (*group, string, error) {
	ids := []rdma.NodeID{1, 2, 3}
	cc.Members = ids
	g := &group{}
	cfgs := make([]node.Config, len(ids))
	for i, id := range ids {
		c := node.DefaultConfig()
		c.ID, c.Consensus, c.Poll, c.StateMachine = id, cc, pm, newBook()
		cfgs[i] = c
	}
	var desc string
	switch fabric {
	case "inproc":
		net, fabrics, err := node.InprocFabrics(ids, cc)
		if err != nil {
			return nil, "", err
		}
		g.net = net
		for i, id := range ids {
			cfgs[i].Fabric = fabrics[id]
		}
		desc = fmt.Sprintf("3 replicas over rdma/inproc (no RDMA device), %s drivers", pm)
	case "verbs":
		gid, err := node.FindRoCEv2(device)
		if err != nil {
			return nil, "", err
		}
		var peers []node.Peer
		for _, id := range ids {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, "", err
			}
			peers = append(peers, node.Peer{ID: id, Address: l.Addr().String()})
			l.Close()
		}
		var ca clustertls.PEM
		if auth == "tls" {
			// A deployment loads credentials made by `mu certs`; this run
			// makes a throwaway CA and a certificate per replica.
			if ca, err = clustertls.NewCA("embed", time.Hour); err != nil {
				return nil, "", err
			}
		}
		for i := range cfgs {
			cfgs[i].ClusterID, cfgs[i].Peers, cfgs[i].Device = 0x6d75, peers, node.Spec(gid)
			if auth != "tls" {
				cfgs[i].Insecure = true
				continue
			}
			if cfgs[i].Credentials, err = clustertls.IssueCredentials(ca, clustertls.NodeIdentity(ids[i]), time.Hour); err != nil {
				return nil, "", err
			}
		}
		desc = fmt.Sprintf("3 replicas in this process, each with its own verbs fabric on %s (GID %s), %s drivers, %s bootstrap", gid.Device, gid, pm, auth)
	default:
		return nil, "", fmt.Errorf("-fabric: %q is not verbs, inproc or auto", fabric)
	}
	// Start blocks until a majority is connected: start all three at once.
	type started struct {
		i   int
		n   *node.Node
		err error
	}
	ch := make(chan started, len(cfgs))
	for i := range cfgs {
		go func() {
			n, err := node.Start(ctx, cfgs[i])
			ch <- started{i, n, err}
		}()
	}
	g.nodes = make([]*node.Node, len(cfgs))
	var errs []error
	for range cfgs {
		s := <-ch
		g.nodes[s.i] = s.n
		errs = append(errs, s.err)
	}
	if err := errors.Join(errs...); err != nil {
		g.close()
		return nil, "", err
	}
	return g, desc, nil
}

// leader waits for the replica that commits barriers and keeps leading
// for settle: right after start the detectors are still converging.
func (g *group) leader(ctx context.Context) (*node.Node, error) {
	const settle = 500 * time.Millisecond
	for ctx.Err() == nil {
		for _, n := range g.nodes {
			since := time.Now()
			for n.IsLeader() && n.Barrier(ctx) == nil {
				if time.Since(since) > settle {
					return n, nil
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	return nil, errors.New("no leader")
}

func (g *group) close() {
	for _, n := range g.nodes {
		n.Close() // a nil node (failed to start) closes as a no-op
	}
	if g.net != nil {
		g.net.Close()
	}
}

// latencies are per-order times.
type latencies []time.Duration

// at is the q quantile (sorts l).
func (l latencies) at(q float64) time.Duration {
	slices.Sort(l)
	return l[int(q*float64(len(l)-1)+0.5)]
}

func (l latencies) mean() time.Duration {
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return sum / time.Duration(len(l))
}

func us(d time.Duration) string { return fmt.Sprintf("%.2f µs", float64(d)/1e3) }
