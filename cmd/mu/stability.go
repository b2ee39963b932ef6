package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// stabilityResult is what a fault-free run of a replica group shows of its
// failure detector: leaderships won after the first (each one a leader
// change nobody asked for) and the detector's suspicions.
type stabilityResult struct {
	Nodes         int
	Duration      time.Duration
	Committed     int
	LeaderChanges int
	// Elections: leader changes started (won or not); Deposed: leaders
	// that found a higher proposal on a follower.
	Elections, Deposed uint64
	// Suspicions: verdicts turned failed; Retracted: of those, peers that
	// came back with their counter continued, i.e. were never down (with
	// no fault injected, every one is a false suspicion).
	Suspicions, Retracted uint64
	Samples               uint64
	// ReaderStalls and ReaderStalledNs: Steps that came more than a
	// period late (the node was descheduled) and their time beyond the
	// period, summed over nodes; no peer's staleness counts it.
	ReaderStalls    uint64
	ReaderStalledNs int64
	// PeriodNs and BoundNs: the detectors' sampling period and failure
	// bound at the end (largest over nodes).
	PeriodNs, BoundNs int64
}

func newBenchStabilityCmd() *cobra.Command {
	var (
		duration time.Duration
		nodes    int
		drive    string
		rate     int
	)
	c := &cobra.Command{
		Use:   "stability",
		Short: "a fault-free replica group in this process (rdma/inproc): leader changes and false suspicions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := runStability(cmd.Context(), nodes, drive, duration, rate)
			if err != nil {
				return err
			}
			writeStability(cmd.OutOrStdout(), res, drive)
			return nil
		},
	}
	f := c.Flags()
	f.DurationVar(&duration, "duration", 60*time.Second, "how long the group runs without a fault")
	f.IntVar(&nodes, "nodes", 3, "replicas")
	f.StringVar(&drive, "drive", PollSpinYield, "replica driver: spin or spin-yield")
	f.IntVar(&rate, "rate", 1000, "proposals per second to the leader (0: idle)")
	return c
}

// stabilityGroup is n replicas built by consensus.New over rdma/inproc in
// this process, each driven by Run on its own goroutine.
type stabilityGroup struct {
	net  *inproc.Network
	reps []*consensus.Replica
	sms  []*countSM
	done []chan struct{}
	stop context.CancelFunc
}

// countSM is a state machine that only counts what it applied.
type countSM struct{ applied int }

func (m *countSM) Apply(consensus.Index, []byte)         { m.applied++ }
func (m *countSM) Snapshot() ([]byte, error)             { return nil, nil }
func (m *countSM) Restore(consensus.Index, []byte) error { return nil }

func newStabilityGroup(n int, mode consensus.DriveMode) (*stabilityGroup, error) {
	cfg := consensus.DefaultConfig()
	for i := 1; i <= n; i++ {
		cfg.Members = append(cfg.Members, rdma.NodeID(i))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	net, err := inproc.NewNetwork(inproc.DefaultConfig())
	if err != nil {
		return nil, err
	}
	g := &stabilityGroup{net: net}
	for _, id := range cfg.Members {
		if _, err := net.AddNode(id, int(cfg.RegionBytes())); err != nil {
			net.Close()
			return nil, err
		}
	}
	// Nobody leads yet: peers may read each other's logs, not write them.
	if err := net.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll}); err != nil {
		net.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.stop = cancel
	for _, id := range cfg.Members {
		sm := &countSM{}
		r, err := consensus.New(net.Node(id), sm, cfg)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("replica %d: %w", id, err)
		}
		done := make(chan struct{})
		g.reps, g.sms, g.done = append(g.reps, r), append(g.sms, sm), append(g.done, done)
		go func() {
			defer close(done)
			_ = r.Run(ctx, mode)
		}()
	}
	return g, nil
}

// halt stops every driver and waits for them: the detectors may then be
// read from this goroutine.
func (g *stabilityGroup) halt() {
	g.stop()
	for _, d := range g.done {
		<-d
	}
}

func (g *stabilityGroup) close() {
	g.halt()
	for _, r := range g.reps {
		r.Close()
	}
	g.net.Close()
}

func (g *stabilityGroup) leader() (*consensus.Replica, bool) {
	for _, r := range g.reps {
		if r.IsLeader() {
			return r, true
		}
	}
	return nil, false
}

// runStability runs n replicas with the default configuration for d with a
// steady proposal stream and no fault, then reads every detector.
func runStability(ctx context.Context, n int, drive string, d time.Duration, rate int) (stabilityResult, error) {
	res := stabilityResult{Nodes: n, Duration: d}
	var mode consensus.DriveMode
	switch drive {
	case PollSpin:
		if err := consensus.CheckBusyPoll(n); err != nil {
			return res, fmt.Errorf("--drive %s: %w", drive, err)
		}
		mode = consensus.DriveBusyPoll
	case PollSpinYield:
		mode = consensus.DriveSpinYield
	default:
		return res, fmt.Errorf("--drive: %q is not %s or %s", drive, PollSpin, PollSpinYield)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	g, err := newStabilityGroup(n, mode)
	if err != nil {
		return res, err
	}
	defer g.close()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var every time.Duration
	if rate > 0 {
		every = time.Second / time.Duration(rate)
	}
	cmd := make([]byte, 64)
	next := time.Now()
	for ctx.Err() == nil {
		if every == 0 {
			<-ctx.Done()
			break
		}
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait) // the client's pacing, not a replica's wait
		}
		next = next.Add(every)
		r, ok := g.leader()
		if !ok {
			continue
		}
		binary.LittleEndian.PutUint64(cmd, uint64(res.Committed+1))
		pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		if _, err := r.Propose(pctx, cmd); err == nil {
			res.Committed++
		}
		pcancel()
	}
	g.halt()
	terms := 0
	for _, r := range g.reps {
		rs := r.Stats()
		terms += int(rs.LeaderTerms)
		res.Elections += rs.Elections
		res.Deposed += rs.Deposed
		det := r.Detector()
		st := det.Stats()
		res.Suspicions += st.Suspicions
		res.Retracted += st.Retracted
		res.Samples += st.Samples
		res.ReaderStalls += st.ReaderStalls
		res.ReaderStalledNs += st.ReaderStalledNs
		res.PeriodNs = max(res.PeriodNs, det.PeriodNs())
		res.BoundNs = max(res.BoundNs, det.FailBoundNs())
	}
	res.LeaderChanges = max(terms-1, 0)
	return res, nil
}

func writeStability(w io.Writer, r stabilityResult, drive string) {
	fmt.Fprintf(w, "group:       %d replicas in one process over rdma/inproc, %s drivers, default configuration, no fault, %d cores (GOMAXPROCS %d)\n",
		r.Nodes, drive, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "ran:         %s, %d proposals committed\n", r.Duration, r.Committed)
	fmt.Fprintf(w, "leadership:  %d leader changes after the first election (%d leader changes started, %d leaders deposed)\n", r.LeaderChanges, r.Elections, r.Deposed)
	rate := 0.0
	if r.Samples > 0 {
		rate = float64(r.Suspicions) / float64(r.Samples)
	}
	perMin := 0.0
	if r.Duration > 0 {
		perMin = float64(r.Suspicions) / r.Duration.Minutes()
	}
	fmt.Fprintf(w, "detector:    %d suspicions (%d retracted: peer was alive) in %d samples (%.2g per sample, %.1f false suspicions per minute); period %.1f µs, failure bound %.1f µs at the end\n",
		r.Suspicions, r.Retracted, r.Samples, rate, perMin, float64(r.PeriodNs)/1e3, float64(r.BoundNs)/1e3)
	fmt.Fprintf(w, "readers:     %d Steps more than a period late (descheduled), %.1f ms beyond the period in all, not counted against any peer\n",
		r.ReaderStalls, float64(r.ReaderStalledNs)/1e6)
}
