package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/node"
	"github.com/rdmaconsensus/mu/rdma"
)

// muPublishedFailoverNs is Mu's failover time as published (OSDI 2020:
// 873 µs median on ConnectX-4 hardware), shown beside ours.
const muPublishedFailoverNs = 873_000

func newBenchCmd() *cobra.Command {
	c := &cobra.Command{Use: "bench", Short: "failover and replication benchmarks on an RDMA device"}
	c.AddCommand(newBenchFailoverCmd(), newBenchReplicateCmd(), newBenchStabilityCmd(), newBenchPlotCmd(), newBenchRestartCmd(), newBenchDurabilityCmd())
	return c
}

func parseInts(s, flag string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%s: %q is not a list of positive integers", flag, s)
		}
		out = append(out, v)
	}
	return out, nil
}

type failoverSeries struct {
	Nodes  int
	Kind   faultKind
	Faults []faultResult
	Acked  int
	Err    error // the series stopped early
}

func quantileNs(v []int64, q float64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

func newBenchFailoverCmd() *cobra.Command {
	var (
		nodesFlag, faultsFlag, pngPath, drive, device string
		reps, between, rawSamples                     int
		readInterval, permTimeout                     time.Duration
	)
	c := &cobra.Command{
		Use:   "failover",
		Short: "kill or freeze the leader of `mu node` processes again and again; failover percentiles and steps",
		Long: `failover starts groups of mu node processes on the RDMA device and, under a
continuous order stream, takes the leader out --reps times per series
(SIGKILL and restart without its log, or SIGSTOP and SIGCONT), measuring
each failover from the signal to the first order acknowledged by the new
leader, with the new leader's steps: detection, permission switch,
prepare/catch-up, first commit. After each series every acknowledged order
must be applied on every node, with identical logs. The raw RDMA read
latency of the same device is measured in the same run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sizes, err := parseInts(nodesFlag, "--nodes")
			if err != nil {
				return err
			}
			var kinds []faultKind
			for _, f := range strings.Split(faultsFlag, ",") {
				switch strings.TrimSpace(f) {
				case "kill":
					kinds = append(kinds, faultKill)
				case "stop":
					kinds = append(kinds, faultFreeze)
				default:
					return fmt.Errorf("--faults: %q is not kill or stop", f)
				}
			}
			if reps < 1 {
				return fmt.Errorf("--reps: %d must be at least 1", reps)
			}
			ctx := cmd.Context()
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			gid, err := pickGID(device)
			if err != nil {
				return err
			}
			raw, err := rawLatency(gid, rdma.OpRead, 8, rawSamples)
			if err != nil {
				return fmt.Errorf("raw read latency: %w", err)
			}
			fmt.Fprintf(out, "device %s; raw 8 B RDMA read (post -> completion, %d samples): p50 %s p99 %s\n",
				gid, raw.TotalCount(), us(raw.ValueAtQuantile(50)), us(raw.ValueAtQuantile(99)))
			var series []failoverSeries
			var failed []error
			for _, n := range sizes {
				for _, k := range kinds {
					label := fmt.Sprintf("%d nodes, %s", n, k)
					g, err := startProcGroup(ctx, procGroupOptions{n: n, device: device, drive: drive,
						readInterval: readInterval, permissionTimeout: permTimeout})
					if err != nil {
						failed = append(failed, fmt.Errorf("%s: %w", label, err))
						fmt.Fprintf(out, "%s: FAILED to start: %v\n", label, err)
						continue
					}
					plan := make([]faultKind, reps)
					for i := range plan {
						plan[i] = k
					}
					bar := newStepProgress(errw, label, reps)
					run, err := runChaos(ctx, g, plan, chaosOptions{seed: uint64(n*10 + int(k)), ordersBefore: between, ordersBetween: between,
						failoverWait: time.Minute, recoverWait: 3 * time.Minute,
						onFault: func(i int, r faultResult) {
							bar.Step("last " + us(r.FailoverNs))
						}})
					g.close()
					s := failoverSeries{Nodes: n, Kind: k, Faults: run.Faults, Acked: len(run.Acks), Err: err}
					series = append(series, s)
					// Each series is printed as it ends, so a later failure
					// loses nothing measured.
					writeFailoverRow(out, s)
					if err != nil {
						failed = append(failed, fmt.Errorf("%s: %w", label, err))
						fmt.Fprintf(out, "  %s: FAILED after %d failovers: %v\n", label, len(run.Faults), err)
					}
					if pngPath != "" {
						if err := writeFailoverPlot(pngPath, series); err != nil {
							return err
						}
					}
				}
			}
			fmt.Fprintf(out, "reference: Mu (OSDI 2020) published failover %s on ConnectX-4; raw 8 B RDMA read here p50 %s p99 %s\n",
				us(muPublishedFailoverNs), us(raw.ValueAtQuantile(50)), us(raw.ValueAtQuantile(99)))
			if pngPath != "" {
				fmt.Fprintf(out, "plot: %s (each failover's steps stacked, per series; below, the distribution of failover times)\n", pngPath)
			}
			return errors.Join(failed...)
		},
	}
	f := c.Flags()
	f.StringVar(&nodesFlag, "nodes", "3,5", "group sizes, comma-separated")
	f.StringVar(&faultsFlag, "faults", "kill,stop", "kill (SIGKILL, restart) and/or stop (SIGSTOP, SIGCONT)")
	f.IntVar(&reps, "reps", 50, "failovers per series")
	f.IntVar(&between, "orders-between", 20, "orders acknowledged between failovers")
	f.IntVar(&rawSamples, "raw-samples", 2000, "raw RDMA reads to time")
	f.StringVar(&pngPath, "png", "failover.png", "where to write the plot, .png or .svg (\"\" for none)")
	f.StringVar(&drive, "drive", PollIdleSleep, "nodes' poll_mode")
	f.StringVar(&device, "device", "", "RDMA device (default: the first)")
	f.DurationVar(&readInterval, "read-interval", 0, "nodes' pull-score read interval (default 40us)")
	f.DurationVar(&permTimeout, "permission-timeout", 0, "nodes' bound on each leader-change step (default 2ms)")
	return c
}

const failoverHeader = "nodes  fault     reps | failover p50 / p90 / p99          | median steps: detection / permission / prepare+catch-up / first commit"

// writeFailoverRow prints one series: its failover percentiles and the
// median of each step over the failovers whose steps were all recorded.
func writeFailoverRow(w io.Writer, s failoverSeries) {
	var fo, det, perm, cu, fc []int64
	for _, f := range s.Faults {
		fo = append(fo, f.FailoverNs)
		if f.Steps.Complete {
			det, perm = append(det, f.Steps.DetectNs), append(perm, f.Steps.PermissionNs)
			cu, fc = append(cu, f.Steps.CatchUpNs), append(fc, f.Steps.FirstCommitNs)
		}
	}
	check := "all acknowledged orders applied on every node, identical logs: OK"
	if s.Err != nil {
		check = "series did not finish; no final check"
	}
	fmt.Fprintf(w, "%s\n%-6d %-8s %5d | %9s / %9s / %9s | %s / %s / %s / %s (%d of %d with all steps); %d orders acknowledged; %s\n",
		failoverHeader, s.Nodes, s.Kind, len(s.Faults),
		us(quantileNs(fo, .5)), us(quantileNs(fo, .9)), us(quantileNs(fo, .99)),
		us(quantileNs(det, .5)), us(quantileNs(perm, .5)), us(quantileNs(cu, .5)), us(quantileNs(fc, .5)), len(det), len(s.Faults), s.Acked, check)
}

func newBenchReplicateCmd() *cobra.Command {
	var (
		sizesFlag, drive, device  string
		plotPath                  string
		samples, proposers        int
		duration                  time.Duration
		readInterval, permTimeout time.Duration
	)
	c := &cobra.Command{
		Use:   "replicate",
		Short: "commit latency and throughput by payload size, next to the raw signaled RDMA write latency",
		Long: `replicate runs 3 replicas in this process, each over its own verbs fabric
on the RDMA device (no TCP on the measured path), and times Propose on the
leader: from the call to its return, committed on a majority and applied.
Throughput is measured with several concurrent proposers for --duration.
The raw latency of one signaled RDMA write of the same size on the same
device, post to completion, is measured in the same run. The replicas
apply to the order book, which rejects these payloads as malformed after
decoding their header: the figures are replication's, not matching's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sizes, err := parseInts(sizesFlag, "--sizes")
			if err != nil {
				return err
			}
			gid, err := pickGID(device)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			g, err := newVerbsGroup(gid, 3, drive, slices.Max(sizes), readInterval, permTimeout)
			if err != nil {
				return err
			}
			defer g.close()
			leader, err := g.waitLeader(cmd.Context(), 2*time.Minute)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "device %s; 3 replicas in one process, %s drivers, leader %d\n", gid, drive, leader)
			fmt.Fprintf(out, "%-7s | %-33s | %-22s | %-12s | %s\n", "payload", "commit p50 / p99 / p99.9", "raw write p50 / p99", "p50 ratio", "throughput")
			var plotted []latencySeries
			for _, size := range sizes {
				raw, err := rawLatency(gid, rdma.OpWrite, size, samples)
				if err != nil {
					return fmt.Errorf("raw write %d B: %w", size, err)
				}
				lat, err := g.commitLatency(cmd.Context(), size, samples)
				if err != nil {
					return fmt.Errorf("commit %d B: %w", size, err)
				}
				tput, err := g.throughput(cmd.Context(), size, proposers, duration)
				if err != nil {
					return fmt.Errorf("throughput %d B: %w", size, err)
				}
				fmt.Fprintf(out, "%5d B | %9s / %9s / %9s | %9s / %9s | %5.2fx | %.0f commits/s (%d proposers)\n", size,
					us(lat.ValueAtQuantile(50)), us(lat.ValueAtQuantile(99)), us(lat.ValueAtQuantile(99.9)),
					us(raw.ValueAtQuantile(50)), us(raw.ValueAtQuantile(99)),
					float64(lat.ValueAtQuantile(50))/float64(max(raw.ValueAtQuantile(50), 1)), tput, proposers)
				panel := fmt.Sprintf("%d B", size)
				plotted = append(plotted, latencySeries{Panel: panel, Name: "commit: Propose on the leader", Hist: lat},
					latencySeries{Panel: panel, Name: "raw RDMA write", Hist: raw})
			}
			if plotPath == "" {
				return nil
			}
			fmt.Fprintf(out, "plot: %s (latency by percentile, log scales)\n", plotPath)
			return writeLatencyPlot(plotPath, "latency by percentile", plotted)
		},
	}
	f := c.Flags()
	f.StringVar(&sizesFlag, "sizes", "64,256,1024,4096", "payload sizes in bytes")
	f.StringVar(&plotPath, "plot", "", "where to write latency by percentile, .png or .svg (\"\" for none)")
	f.IntVar(&samples, "samples", 2000, "proposals (and raw writes) timed per size")
	f.IntVar(&proposers, "proposers", 8, "concurrent proposers for the throughput figure")
	f.DurationVar(&duration, "duration", 3*time.Second, "throughput measurement time per size")
	f.StringVar(&drive, "drive", PollSpinYield, "replica driver: spin, spin-yield or idle-sleep")
	f.StringVar(&device, "device", "", "RDMA device (default: the first)")
	f.DurationVar(&readInterval, "read-interval", 0, "pull-score read interval (default 40us)")
	f.DurationVar(&permTimeout, "permission-timeout", 0, "bound on each leader-change step (default 2ms)")
	return c
}

// rawLatency times n one-sided operations between two queue pairs of this
// process on gid's device (see node.RawLatency).
func rawLatency(gid rdma.GIDEntry, op rdma.Op, size, n int) (*hdrhistogram.Histogram, error) {
	h := newLatencyHist()
	err := node.RawLatency(gid, op, size, n, func(ns int64) { _ = h.RecordValue(ns) })
	return h, err
}

// verbsGroup is replicas in this process, each a node with its own verbs
// fabric on one device, bootstrapped over loopback TCP.
type verbsGroup struct {
	ids   []rdma.NodeID
	nodes map[rdma.NodeID]*replicaNode
}

func newVerbsGroup(gid rdma.GIDEntry, n int, drive string, maxPayload int, readInterval, permTimeout time.Duration) (*verbsGroup, error) {
	if drive != PollSpin && drive != PollSpinYield && drive != PollIdleSleep {
		return nil, fmt.Errorf("--drive: %q is not %s, %s or %s", drive, PollSpin, PollSpinYield, PollIdleSleep)
	}
	g := &verbsGroup{nodes: map[rdma.NodeID]*replicaNode{}}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	var peers []node.Peer
	for i := 1; i <= n; i++ {
		g.ids = append(g.ids, rdma.NodeID(i))
		peers = append(peers, node.Peer{ID: rdma.NodeID(i), Address: fmt.Sprintf("127.0.0.1:%d", ports[i-1])})
	}
	cc := consensus.DefaultConfig()
	cc.Members = g.ids
	if readInterval > 0 {
		cc.PullScore.ReadIntervalNs = int64(readInterval)
		cc.PullScore.BeatIntervalNs = min(cc.PullScore.BeatIntervalNs, int64(readInterval)/2)
	}
	if permTimeout > 0 {
		cc.ElectionTimeoutNs = int64(permTimeout)
	}
	// Room for the largest payload plus the batch framing.
	cc.MaxPayloadBytes = max(cc.MaxPayloadBytes, (maxPayload+64+63)/64*64)
	cc.MaxBulkWriteBytes = max(cc.MaxBulkWriteBytes, cc.MaxPayloadBytes+64)
	type started struct {
		id  rdma.NodeID
		nd  *replicaNode
		err error
	}
	ch := make(chan started, n)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, id := range g.ids {
		nc := node.DefaultConfig()
		nc.ID, nc.ClusterID, nc.Peers, nc.Consensus = id, 0x6d75, peers, cc
		nc.Device = node.Spec(gid)
		// Loopback only, for a measurement: no credentials.
		nc.Insecure, nc.Poll = true, pollMode(drive)
		go func() {
			nd, err := startReplica(ctx, nc)
			ch <- started{id, nd, err}
		}()
	}
	var errs []error
	for range g.ids {
		s := <-ch
		if s.err != nil {
			errs = append(errs, fmt.Errorf("replica %d: %w", s.id, s.err))
			continue
		}
		g.nodes[s.id] = s.nd
	}
	if err := errors.Join(errs...); err != nil {
		g.close()
		return nil, fmt.Errorf("--drive %s: %w", drive, err)
	}
	return g, nil
}

func (g *verbsGroup) close() {
	for _, nd := range g.nodes {
		nd.stop()
	}
}

// waitLeader proposes a one-byte command until a replica accepts it.
func (g *verbsGroup) waitLeader(ctx context.Context, timeout time.Duration) (rdma.NodeID, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, id := range g.ids {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			_, err := g.nodes[id].propose(pctx, []byte{0})
			cancel()
			if err == nil {
				return id, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no leader within %v", timeout)
}

func (g *verbsGroup) leader() *replicaNode {
	for _, id := range g.ids {
		if g.nodes[id].n.IsLeader() {
			return g.nodes[id]
		}
	}
	return nil
}

// commitLatency times n proposals of size bytes, one at a time.
func (g *verbsGroup) commitLatency(ctx context.Context, size, n int) (*hdrhistogram.Histogram, error) {
	h := newLatencyHist()
	buf := make([]byte, size)
	for i := 0; i < n; {
		r := g.leader()
		if r == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		buf[0] = byte(i)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		_, err := r.propose(pctx, buf)
		el := time.Since(start)
		cancel()
		if err != nil {
			if errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrLeadershipLost) {
				continue
			}
			return nil, err
		}
		h.RecordValue(int64(el))
		i++
	}
	return h, nil
}

// throughput runs proposers concurrent proposers for d and returns
// commits per second.
func (g *verbsGroup) throughput(ctx context.Context, size, proposers int, d time.Duration) (float64, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range proposers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for time.Now().Before(stop) {
				r := g.leader()
				if r == nil {
					time.Sleep(time.Millisecond)
					continue
				}
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := r.propose(pctx, buf)
				cancel()
				if err == nil {
					done.Add(1)
				} else if !errors.Is(err, consensus.ErrNotLeader) && !errors.Is(err, consensus.ErrLeadershipLost) && !errors.Is(err, consensus.ErrQueueFull) {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return 0, e
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}
