package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/node"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// demoTarget is a group the demo can crash a member of and inspect.
type demoTarget interface {
	target
	// kill crashes replica id the way the fabric allows (inproc: the node's
	// NIC stops answering and its driver stops; processes: SIGKILL).
	kill(id rdma.NodeID) error
	// logs returns what each of ids applied.
	logs(ctx context.Context, ids []rdma.NodeID) (map[rdma.NodeID]nodeLog, error)
	// terms returns the timelines of the terms replica id led, in Unix ns.
	terms(ctx context.Context, id rdma.NodeID) ([]failoverSteps, error)
	describe() string
}

type demoOptions struct {
	before, after int    // orders acknowledged before the fault, and after the failover
	seed          uint64 // load generator seed
	timeout       time.Duration
}

// demoResult is what one demo run measured.
type demoResult struct {
	oldLeader, newLeader rdma.NodeID
	electedNs            int64 // start -> first acknowledgement
	failoverNs           int64 // fault -> first acknowledgement by the new leader
	steps                breakdown
	acked                int
	before, after        *hdrhistogram.Histogram // commit latency, ns
	checked              []rdma.NodeID
	commands             int
	lastIndex            consensus.Index
}

func newLatencyHist() *hdrhistogram.Histogram { return hdrhistogram.New(100, int64(30*time.Second), 3) }

// runDemo proposes a stream of orders, crashes the leader once opts.before
// orders are acknowledged (while the stream keeps going), and after
// opts.after more verifies that every acknowledged order was applied on the
// survivors and that their applied logs are identical.
func runDemo(ctx context.Context, t demoTarget, opts demoOptions) (demoResult, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	res := demoResult{before: newLatencyHist(), after: newLatencyHist()}
	gen := orderbook.NewLoadGen(opts.seed, orderbook.DefaultLoadGenConfig())
	c := newClient(t)

	start := time.Now()
	var (
		mu      sync.Mutex
		acks    []ack
		count   atomic.Int64
		faultNs atomic.Int64
	)
	total := opts.before + opts.after
	streamErr := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			a, err := c.submit(ctx, gen.Next(nil))
			if err != nil {
				streamErr <- fmt.Errorf("order %d: %w", i+1, err)
				return
			}
			mu.Lock()
			acks = append(acks, a)
			mu.Unlock()
			count.Add(1)
		}
		streamErr <- nil
	}()

	// Crash the leader while the stream runs.
	for count.Load() < int64(opts.before) {
		select {
		case err := <-streamErr:
			if err == nil {
				err = errors.New("stream ended before the fault")
			}
			return res, err
		case <-time.After(100 * time.Microsecond):
		}
	}
	mu.Lock()
	res.oldLeader = acks[len(acks)-1].By
	res.electedNs = acks[0].AtNs - start.UnixNano()
	mu.Unlock()
	faultNs.Store(time.Now().UnixNano())
	if err := t.kill(res.oldLeader); err != nil {
		return res, fmt.Errorf("crashing replica %d: %w", res.oldLeader, err)
	}
	if err := <-streamErr; err != nil {
		return res, err
	}

	fault := faultNs.Load()
	var firstNew *ack
	for i := range acks {
		a := &acks[i]
		if a.AtNs <= fault || a.By == res.oldLeader {
			if a.AtNs <= fault {
				res.before.RecordValue(a.LatNs)
			}
			continue
		}
		if firstNew == nil {
			firstNew = a
			continue // its latency is the failover, not a commit latency
		}
		res.after.RecordValue(a.LatNs)
	}
	if firstNew == nil {
		return res, errors.New("no acknowledgement from a new leader after the fault")
	}
	res.newLeader = firstNew.By
	res.failoverNs = firstNew.AtNs - fault
	res.acked = len(acks)
	if terms, err := t.terms(ctx, res.newLeader); err == nil {
		if s, ok := termAt(terms, firstNew.AtNs); ok {
			res.steps = newBreakdown(fault, s, firstNew.AtNs)
		}
	}

	// Wait for the survivors to apply everything, then compare.
	var survivors []rdma.NodeID
	for _, id := range t.members() {
		if id != res.oldLeader {
			survivors = append(survivors, id)
		}
	}
	res.checked = survivors
	var maxIndex consensus.Index
	for _, a := range acks {
		maxIndex = max(maxIndex, a.Index)
	}
	logs, err := converged(ctx, t, survivors, maxIndex)
	if err != nil {
		return res, err
	}
	if err := verifyLogs(acks, logs); err != nil {
		return res, err
	}
	l := logs[survivors[0]]
	res.commands, _ = digest(l.Entries, l.from())
	res.lastIndex = l.LastIndex
	return res, nil
}

// converged polls the survivors until each has applied at least index and
// all have applied the same, or ctx ends.
func converged(ctx context.Context, t demoTarget, ids []rdma.NodeID, index consensus.Index) (map[rdma.NodeID]nodeLog, error) {
	for {
		logs, err := t.logs(ctx, ids)
		if err == nil {
			same := true
			for _, id := range ids {
				l := logs[id]
				same = same && l.LastIndex >= index && l.LastIndex == logs[ids[0]].LastIndex
			}
			if same {
				return logs, nil
			}
		}
		select {
		case <-ctx.Done():
			desc := ""
			for _, id := range ids {
				desc += fmt.Sprintf(" replica %d at %d;", id, logs[id].LastIndex)
			}
			return nil, fmt.Errorf("survivors did not converge on index %d:%s (last error %v)", index, desc, err)
		case <-time.After(time.Millisecond):
		}
	}
}

func printDemo(w io.Writer, t demoTarget, opts demoOptions, r demoResult) {
	fmt.Fprintf(w, "group:    %s\n", t.describe())
	fmt.Fprintf(w, "leader:   replica %d (first order acknowledged %.1f ms after start)\n", r.oldLeader, float64(r.electedNs)/1e6)
	fmt.Fprintf(w, "before:   %d orders, commit latency p50 %s p99 %s (client round trip)\n",
		r.before.TotalCount(), us(r.before.ValueAtQuantile(50)), us(r.before.ValueAtQuantile(99)))
	fmt.Fprintf(w, "fault:    replica %d crashed with the stream running\n", r.oldLeader)
	fmt.Fprintf(w, "failover: %s  (fault -> first order acknowledged by the new leader, replica %d)\n", us(r.failoverNs), r.newLeader)
	fmt.Fprintf(w, "  steps:  %s\n", r.steps)
	fmt.Fprintf(w, "after:    %d orders, commit latency p50 %s p99 %s\n",
		r.after.TotalCount(), us(r.after.ValueAtQuantile(50)), us(r.after.ValueAtQuantile(99)))
	resent := ""
	if r.commands > r.acked {
		resent = fmt.Sprintf(", of which %d resends of orders whose outcome the crash left unknown, rejected as duplicates", r.commands-r.acked)
	}
	fmt.Fprintf(w, "check:    all %d acknowledged orders applied on replicas %v; applied logs identical (%d commands up to index %d%s); books identical: OK\n",
		r.acked, r.checked, r.commands, r.lastIndex, resent)
}

func newDemoCmd() *cobra.Command {
	var (
		fabric string
		opts   demoOptions
		drive  string
		bin    string
		dev    string

		readInterval, permTimeout time.Duration
	)
	c := &cobra.Command{
		Use:   "demo",
		Short: "replicate an order book through 3 replicas, crash the leader, show failover and that nothing acknowledged was lost",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.before < 1 || opts.after < 1 {
				return fmt.Errorf("--before and --after must be at least 1 (got %d, %d)", opts.before, opts.after)
			}
			if drive != PollSpin && drive != PollSpinYield && drive != PollIdleSleep {
				return fmt.Errorf("--drive: %q is not %s, %s or %s", drive, PollSpin, PollSpinYield, PollIdleSleep)
			}
			var t demoTarget
			switch fabric {
			case "inproc":
				g, err := newInprocGroup(3, drive)
				if err != nil {
					return err
				}
				defer g.close()
				t = g
			case "verbs":
				g, err := startProcGroup(cmd.Context(), procGroupOptions{n: 3, bin: bin, device: dev, drive: drive, readInterval: readInterval, permissionTimeout: permTimeout})
				if err != nil {
					return fmt.Errorf("starting 3 nodes: %w", err)
				}
				defer g.close()
				t = g
			default:
				return fmt.Errorf("--fabric: %q is not inproc or verbs", fabric)
			}
			res, err := runDemo(cmd.Context(), t, opts)
			if err != nil {
				return fmt.Errorf("demo on %s: %w", fabric, err)
			}
			printDemo(cmd.OutOrStdout(), t, opts, res)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&fabric, "fabric", "inproc", "inproc (one process, no RDMA) or verbs (3 `mu node` processes on an RDMA device)")
	f.IntVar(&opts.before, "before", 2000, "orders acknowledged before the leader is crashed")
	f.IntVar(&opts.after, "after", 1000, "orders acknowledged after the fault")
	f.Uint64Var(&opts.seed, "seed", 1, "load generator seed")
	f.DurationVar(&opts.timeout, "timeout", 2*time.Minute, "give up after this long")
	f.StringVar(&drive, "drive", "spin-yield", "replica driver: spin (a core each), spin-yield (when cores are scarce), or idle-sleep (--fabric verbs only: sleep unless proposals are in flight)")
	f.StringVar(&bin, "mu-binary", "", "with --fabric verbs: the mu binary to run nodes with (default: this one)")
	f.StringVar(&dev, "device", "", "with --fabric verbs: RDMA device (default: the first)")
	f.DurationVar(&readInterval, "read-interval", 0, "with --fabric verbs: pull-score read interval of the nodes (default: the config default, 40us)")
	f.DurationVar(&permTimeout, "permission-timeout", 0, "with --fabric verbs: bound on each leader-change step (default: the config default, 2ms)")
	return c
}

// inprocGroup is a replica group in this process over rdma/inproc.
type inprocGroup struct {
	net   *inproc.Network
	ids   []rdma.NodeID
	nodes map[rdma.NodeID]*replicaNode
	drive string
}

func newInprocGroup(n int, drive string) (*inprocGroup, error) {
	return newInprocGroupWith(n, drive, nil)
}

// newInprocGroupWith is newInprocGroup with tweak applied to each
// replica's config before it is built.
func newInprocGroupWith(n int, drive string, tweak func(rdma.NodeID, *consensus.Config) error) (*inprocGroup, error) {
	g := &inprocGroup{nodes: map[rdma.NodeID]*replicaNode{}, drive: drive}
	for i := 1; i <= n; i++ {
		g.ids = append(g.ids, rdma.NodeID(i))
	}
	cfg := consensus.DefaultConfig()
	cfg.Members = g.ids
	var (
		fabrics map[rdma.NodeID]rdma.Fabric
		err     error
	)
	if g.net, fabrics, err = node.InprocFabrics(g.ids, cfg); err != nil {
		return nil, err
	}
	for _, id := range g.ids {
		nc := node.DefaultConfig()
		nc.ID, nc.Fabric, nc.Consensus, nc.Poll = id, fabrics[id], cfg, pollMode(drive)
		nc.IdleSleepMax = time.Duration(cfg.PullScore.BeatIntervalNs)
		if tweak != nil {
			if err := tweak(id, &nc.Consensus); err != nil {
				g.close()
				return nil, fmt.Errorf("replica %d: %w", id, err)
			}
		}
		nd, err := startReplica(context.Background(), nc)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("--drive %s: replica %d: %w", drive, id, err)
		}
		g.nodes[id] = nd
	}
	return g, nil
}

func (g *inprocGroup) members() []rdma.NodeID { return g.ids }

func (g *inprocGroup) describe() string {
	return fmt.Sprintf("%d replicas in one process over rdma/inproc (in-process fabric, no RDMA device), %s drivers", len(g.ids), g.drive)
}

func (g *inprocGroup) propose(ctx context.Context, id rdma.NodeID, cmd []byte) (consensus.Index, error) {
	return g.nodes[id].propose(ctx, cmd)
}

func (g *inprocGroup) kill(id rdma.NodeID) error {
	if err := g.net.Kill(id); err != nil {
		return err
	}
	g.nodes[id].stop()
	return nil
}

func (g *inprocGroup) logs(_ context.Context, ids []rdma.NodeID) (map[rdma.NodeID]nodeLog, error) {
	out := map[rdma.NodeID]nodeLog{}
	for _, id := range ids {
		out[id] = g.nodes[id].nodeLog()
	}
	return out, nil
}

func (g *inprocGroup) terms(_ context.Context, id rdma.NodeID) ([]failoverSteps, error) {
	return g.nodes[id].wallTerms(), nil
}

func (g *inprocGroup) close() {
	for _, n := range g.nodes {
		n.stop()
	}
	g.net.Close()
}

// nodeLog captures what the replica applied and its book's digest.
func (n *replicaNode) nodeLog() nodeLog {
	var l nodeLog
	// The book and the log are read under the state machine's lock so the
	// digest and the last index describe the same state.
	n.sm.applyMu.Lock()
	entries, restored, trimmed := n.sm.log.Snapshot()
	snap, err := n.sm.Snapshot()
	n.sm.applyMu.Unlock()
	l.Entries, l.RestoredAt, l.TrimmedAt = entries, restored, trimmed
	if err == nil {
		h := fnv.New64a()
		h.Write(snap)
		l.StateDigest = h.Sum64()
		l.LastIndex = consensus.Index(leUint64(snap))
	}
	return l
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}
