// Command simfailover measures mu's leader failover on the simulated fabric
// (package sim, latencies fitted to rxe) in virtual time: 3- and 5-replica
// groups under a steady proposal load, the leader crashed (SIGKILL-like) or
// paused (SIGSTOP-like gray failure), over many seeds. For each failover it
// takes the time from the fault to the first commit acknowledged by the new
// leader, and its breakdown from the new leader's OnLeaderChange timings:
// detection, permission switch, prepare, recovery, first commit.
//
// The simulator is seeded, so the same flags print the same figures (stdout);
// wall-clock progress goes to stderr. With -peers, etcd raft and
// hashicorp/raft are measured on this machine in the same run (wall clock).
//
//	cd bench && go run ./simfailover -seeds 200
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rdmaconsensus/mu/bench/raftpeers/peers"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/sim"
)

// Mu's published failover (OSDI 2020, §7: fail-stop of the leader to the
// first commit by the new one, ConnectX-4 over InfiniBand), for reference.
const muPublishedFailoverNs = 873_000

type config struct {
	replicas int
	fault    faultKind
	// mu: Mu's own detector (pullscore.MuConfig: score cap 7, +3/-1, a
	// fixed 40 µs period) instead of the default, on the same fabric.
	mu bool
}

func (c config) String() string {
	if c.mu {
		return fmt.Sprintf("%d replicas, %s, Mu detector", c.replicas, c.fault)
	}
	return fmt.Sprintf("%d replicas, %s", c.replicas, c.fault)
}

// detectorName labels a row's detector.
func (c config) detectorName() string {
	if c.mu {
		return "Mu (cap 7, +3/-1, 40 µs)"
	}
	return "default (measured)"
}

type outcome struct {
	samples  []sample
	failures []string
}

func main() {
	// Own flag set: package sim registers -seed, -seeds and -seedbase on
	// the global one for its test runner.
	flag := flag.NewFlagSet("simfailover", flag.ExitOnError)
	seeds := flag.Int("seeds", 200, "seeds (failovers) per configuration")
	seedBase := flag.Uint64("seedbase", 1, "first seed")
	replicasFlag := flag.String("replicas", "3,5", "group sizes, comma-separated")
	faultsFlag := flag.String("faults", "crash,pause", "leader faults, comma-separated: crash, pause")
	loadIntervalNs := flag.Int64("load-interval-ns", 20_000, "one client proposal every this many virtual ns")
	payloadBytes := flag.Int("payload-bytes", 64, "bytes per proposal (>= 8)")
	warmupNs := flag.Int64("warmup-ns", 10_000_000, "virtual ns of steady load before the fault (the detector's bound needs ~1000 gaps to settle)")
	muRows := flag.Bool("mu", true, "also run every configuration with Mu's own detector (pullscore.MuConfig)")
	deadlineNs := flag.Int64("deadline-ns", 50_000_000, "a failover slower than this (virtual ns) fails its seed")
	maxPayloadBytes := flag.Int("max-payload-bytes", 0, "consensus Config.MaxPayloadBytes (slot payload); 0 keeps DefaultConfig's")
	readWindowSlots := flag.Int("read-window-slots", 0, "consensus Config.ReadWindowSlots (slots per recovery read); 0 keeps DefaultConfig's")
	transportTimeoutNs := flag.Int64("transport-timeout-ns", 0, "sim transport timeout (retry exceeded); 0 keeps sim.DefaultConfig's rxe value")
	bandwidthBytesPerSec := flag.Int64("bandwidth-bytes-per-sec", 0, "sim link bandwidth; 0 keeps sim.DefaultConfig's")
	workers := flag.Int("workers", 1, "seeds simulated in parallel (results do not depend on it)")
	markdown := flag.Bool("markdown", false, "print Markdown tables")
	verbose := flag.Bool("v", false, "print every failover")
	plotDataPath := flag.String("plot-data", "", "also write the failovers (default detector) to this .json, for `mu bench plot`")
	runPeers := flag.Bool("peers", false, "also measure etcd raft and hashicorp/raft failover (wall clock, takes seconds)")
	peerFailovers := flag.Int("peer-failovers", 20, "leader isolations per raft library with -peers")
	peerProposals := flag.Int("peer-proposals", 2000, "commit-latency proposals per raft library with -peers")
	flag.Parse(os.Args[1:])

	fail := func(msg string) {
		fmt.Fprintln(os.Stderr, "simfailover:", msg)
		os.Exit(2)
	}
	var configs []config
	for _, rs := range strings.Split(*replicasFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(rs))
		if err != nil || n < 3 || n > 15 {
			fail(fmt.Sprintf("-replicas: %q is not a group size in 3..15", rs))
		}
		for _, fs := range strings.Split(*faultsFlag, ",") {
			switch strings.TrimSpace(fs) {
			case "crash":
				configs = append(configs, config{replicas: n, fault: faultCrash})
			case "pause":
				configs = append(configs, config{replicas: n, fault: faultPause})
			default:
				fail(fmt.Sprintf("-faults: %q is neither crash nor pause", fs))
			}
		}
	}
	if *muRows {
		for _, c := range configs[:len(configs):len(configs)] {
			c.mu = true
			configs = append(configs, c)
		}
	}
	switch {
	case *seeds < 1:
		fail("-seeds must be >= 1")
	case *payloadBytes < 8:
		fail("-payload-bytes must be >= 8 (the proposal id)")
	case *loadIntervalNs < 1:
		fail("-load-interval-ns must be >= 1")
	case *workers < 1:
		fail("-workers must be >= 1")
	}

	simCfg := sim.DefaultConfig()
	if *bandwidthBytesPerSec > 0 {
		simCfg.BandwidthBytesPerSec = *bandwidthBytesPerSec
	}
	if *transportTimeoutNs > 0 {
		simCfg = simCfg.WithTransportTimeout(*transportTimeoutNs)
	}
	if err := simCfg.Validate(); err != nil {
		fail(err.Error())
	}
	consCfg := consensus.DefaultConfig()
	if *maxPayloadBytes > 0 {
		consCfg.MaxPayloadBytes = *maxPayloadBytes
	}
	if *readWindowSlots > 0 {
		consCfg.ReadWindowSlots = *readWindowSlots
	}
	det := consCfg.PullScore
	consCfg.Members = make([]rdma.NodeID, 3) // for validation only; each trial sets its own
	for i := range consCfg.Members {
		consCfg.Members[i] = rdma.NodeID(i + 1)
	}
	if err := consCfg.Validate(); err != nil {
		fail(err.Error())
	}
	if *payloadBytes > consCfg.MaxProposalBytes() {
		fail(fmt.Sprintf("-payload-bytes must be <= %d (MaxProposalBytes)", consCfg.MaxProposalBytes()))
	}
	base := trialOptions{
		simConfig:      simCfg,
		consensus:      consCfg,
		loadIntervalNs: *loadIntervalNs,
		payloadBytes:   *payloadBytes,
		warmupNs:       *warmupNs,
		phaseSpreadNs:  2 * det.ReadIntervalNs,
		deadlineNs:     *deadlineNs,
		settleNs:       1_000_000,
	}

	out := os.Stdout
	fmt.Fprintf(out, "command: %s\n", commandLine())
	printSetup(out, simCfg, consCfg, base)

	wallStart := time.Now()
	results := make([]outcome, len(configs))
	for ci, c := range configs {
		o := base
		o.replicas, o.fault = c.replicas, c.fault
		if c.mu {
			o.consensus.PullScore = pullscore.MuConfig()
		}
		t0 := time.Now()
		results[ci] = runConfig(o, *seedBase, *seeds, *workers)
		fmt.Fprintf(os.Stderr, "simfailover: %s: %d seeds in %s wall\n", c, *seeds, time.Since(t0).Round(time.Millisecond))
		if *verbose {
			for _, s := range results[ci].samples {
				fmt.Fprintf(out, "  seed %d: leader %d %s, node %d committed after %s (detection %s, permission %s, prepare %s, recovery %s, first commit %s, leaderships %d; %d proposals committed before the fault; detector bound %s, period %s)\n",
					s.seed, s.oldLeader, c.fault, s.newLeader, us(s.totalNs), us(s.detectionNs), us(s.permNs), us(s.prepareNs), us(s.recoveryNs), us(s.firstNs), s.elections, s.preFault, us(s.boundNs), us(s.periodNs))
			}
		}
	}
	fmt.Fprintf(os.Stderr, "simfailover: simulation took %s wall, GOMAXPROCS=%d\n", time.Since(wallStart).Round(time.Millisecond), runtime.GOMAXPROCS(0))

	fmt.Fprintln(out)
	printTable(out, configs, results, *markdown)
	fmt.Fprintf(out, "\nreference: Mu (OSDI 2020) failover %s, measured on ConnectX-4 hardware (not this simulator);\n", us(muPublishedFailoverNs))
	fmt.Fprintf(out, "           the simulated fabric's configured RDMA read takes %s mean (floor %s), ib_read_lat on rxe 21.7 µs.\n",
		us(meanReadNs(simCfg)), us(simCfg.ReadRequest.BaseNs+simCfg.ReadResponse.BaseNs))

	if *plotDataPath != "" {
		if err := writePlotData(*plotDataPath, configs, results); err != nil {
			fail(err.Error())
		}
	}

	failed := 0
	for ci, r := range results {
		failed += len(r.failures)
		// The first few replays are enough to debug; one bug fails many seeds.
		for _, f := range r.failures[:min(len(r.failures), 3)] {
			fmt.Fprintf(out, "FAILED %s: %s\n", configs[ci], f)
		}
		if more := len(r.failures) - 3; more > 0 {
			fmt.Fprintf(out, "FAILED %s: %d more seeds\n", configs[ci], more)
		}
	}

	if *runPeers {
		fmt.Fprintln(out)
		if err := printPeers(out, configs, results, *peerProposals, *peerFailovers, *markdown); err != nil {
			fmt.Fprintln(os.Stderr, "simfailover: peers:", err)
			os.Exit(1)
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

// runConfig runs seeds [seedBase, seedBase+n) of one configuration. Each
// seed is its own world, so running them on several goroutines changes
// nothing but the wall time; results are kept in seed order.
func runConfig(o trialOptions, seedBase uint64, n, workers int) outcome {
	samples := make([]sample, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				samples[i], errs[i] = runTrial(seedBase+uint64(i), o)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	var res outcome
	for i := range n {
		seed := seedBase + uint64(i)
		if errs[i] != nil {
			res.failures = append(res.failures, fmt.Sprintf("seed %d: %v (replay: %s)", seed, errs[i], replayCommand(o, seed)))
			continue
		}
		res.samples = append(res.samples, samples[i])
	}
	return res
}

func replayCommand(o trialOptions, seed uint64) string {
	return fmt.Sprintf("go run ./simfailover -seeds 1 -seedbase %d -replicas %d -faults %s -load-interval-ns %d -payload-bytes %d -warmup-ns %d -max-payload-bytes %d -read-window-slots %d -transport-timeout-ns %d -bandwidth-bytes-per-sec %d -v",
		seed, o.replicas, o.fault, o.loadIntervalNs, o.payloadBytes, o.warmupNs, o.consensus.MaxPayloadBytes, o.consensus.ReadWindowSlots, o.simConfig.TransportTimeoutNs, o.simConfig.BandwidthBytesPerSec)
}

// commandLine is how this run was invoked, program name without its
// temporary directory (go run builds into one).
func commandLine() string {
	parts := []string{filepath.Base(os.Args[0])}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func printSetup(w io.Writer, sc sim.Config, cc consensus.Config, o trialOptions) {
	det := cc.PullScore
	fmt.Fprintf(w, "fabric: sim.DefaultConfig (fitted to rxe in the reference VM), one way per leg: floor + uniform jitter, %.0f%% tail of exponential mean:\n", sc.ReadRequest.TailProb*100)
	for _, l := range []struct {
		name string
		lat  sim.Latency
	}{{"write request", sc.WriteRequest}, {"write ack", sc.WriteAck}, {"read request", sc.ReadRequest}, {"read response", sc.ReadResponse}} {
		fmt.Fprintf(w, "  %-13s %s + [0, %s) + tail %s\n", l.name, us(l.lat.BaseNs), us(l.lat.JitterNs), us(l.lat.TailMeanNs))
	}
	fmt.Fprintf(w, "  read round trip mean %s, write round trip mean %s; access-flag change %s of CPU, QP reset %s; transport timeout %s\n",
		us(meanReadNs(sc)), us(meanNs(sc.WriteRequest)+meanNs(sc.WriteAck)), us(sc.SetAccessNs), us(sc.ResetNs), us(sc.TransportTimeoutNs))
	fmt.Fprintf(w, "detector: pullscore.DefaultConfig: score 0..%d, failed below %d; period = read round trip + 2 deviations in [%s, %s]; a live peer fails when its staleness (less the reader's own descheduled time) reaches the bound = 1.25 x the staleness tail of live peers (1 in 1024 and the envelope), at least 1.5 x (own longest Step gap + period), in [%s, %s]; heartbeats read and pushed\n",
		det.ScoreMax, det.FailBelow, us(det.ReadIntervalNs), us(det.MaxReadIntervalNs), us(det.FailBoundNs), us(det.MaxFailBoundNs))
	mu := pullscore.MuConfig()
	fmt.Fprintf(w, "  Mu rows: pullscore.MuConfig: score 0..%d, +%d/-%d, failed below %d, read every %s: %d misses = %s from the last beat seen\n",
		mu.ScoreMax, mu.UpStep, mu.DownStep, mu.FailBelow, us(mu.ReadIntervalNs), mu.MissesToFail(), us(int64(mu.MissesToFail())*mu.ReadIntervalNs))
	lay := consensus.NewLayout(cc)
	// One recovery round reads min(ReadWindowSlots, RecoveryReadBytes /
	// slot stride) slots, at least one, as consensus does (0 means 16 KiB).
	readCap := int64(cc.RecoveryReadBytes)
	if readCap == 0 {
		readCap = 16 << 10
	}
	windowSlots := min(int64(cc.ReadWindowSlots), max(1, readCap/int64(lay.SlotStrideBytes)))
	windowBytes := windowSlots * int64(lay.SlotStrideBytes)
	fmt.Fprintf(w, "consensus: MaxPayloadBytes %d, ReadWindowSlots %d, LogSlots %d, election step timeout %s, leader beat %s, permission request timeout %s\n",
		cc.MaxPayloadBytes, cc.ReadWindowSlots, cc.LogSlots, us(cc.ElectionTimeoutNs), us(cc.LeaderBeatNs), us(cc.Permissions.RequestTimeoutNs))
	fmt.Fprintf(w, "  one recovery read per peer: min(ReadWindowSlots %d, RecoveryReadBytes %d B / slot %d B) = %d slots = %d B, %s on a link of %d B/s (heartbeat reads on that link queue behind it)\n",
		cc.ReadWindowSlots, readCap, lay.SlotStrideBytes, windowSlots, windowBytes, us(windowBytes*1_000_000_000/sc.BandwidthBytesPerSec), sc.BandwidthBytesPerSec)
	fmt.Fprintf(w, "load: one %d-byte proposal every %s to the leader; %s of warm-up; fault at a uniform phase in [0, %s) after it\n",
		o.payloadBytes, us(o.loadIntervalNs), us(o.warmupNs), us(o.phaseSpreadNs))
}

func meanNs(l sim.Latency) int64 {
	return l.BaseNs + l.JitterNs/2 + int64(l.TailProb*float64(l.TailMeanNs))
}

func meanReadNs(sc sim.Config) int64 { return meanNs(sc.ReadRequest) + meanNs(sc.ReadResponse) }

// us renders nanoseconds as microseconds with one decimal.
func us(ns int64) string { return strconv.FormatFloat(float64(ns)/1000, 'f', 1, 64) + " µs" }

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(float64(len(sorted))*p/100+0.999999999) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

type phase struct {
	name string
	get  func(sample) int64
}

var phases = []phase{
	{"detection", func(s sample) int64 { return s.detectionNs }},
	{"permission", func(s sample) int64 { return s.permNs }},
	{"prepare", func(s sample) int64 { return s.prepareNs }},
	{"recovery", func(s sample) int64 { return s.recoveryNs }},
	{"catch-up (prepare+recovery)", func(s sample) int64 { return s.prepareNs + s.recoveryNs }},
	{"first commit", func(s sample) int64 { return s.firstNs }},
	{"to new leader", func(s sample) int64 { return s.totalNs - s.firstNs }},
	{"total: fault -> first commit", func(s sample) int64 { return s.totalNs }},
}

func sortedBy(samples []sample, get func(sample) int64) []int64 {
	v := make([]int64, len(samples))
	for i, s := range samples {
		v[i] = get(s)
	}
	slices.Sort(v)
	return v
}

func printTable(w io.Writer, configs []config, results []outcome, markdown bool) {
	header := []string{"replicas", "fault", "detector", "failovers", "failed", "extra elections", "phase", "p50", "p90", "p99", "max"}
	var rows [][]string
	for ci, c := range configs {
		r := results[ci]
		extra := 0
		for _, s := range r.samples {
			extra += s.elections - 1
		}
		for _, ph := range phases {
			v := sortedBy(r.samples, ph.get)
			row := []string{strconv.Itoa(c.replicas), c.fault.String(), c.detectorName(), strconv.Itoa(len(r.samples)), strconv.Itoa(len(r.failures)), strconv.Itoa(extra), ph.name}
			for _, p := range []float64{50, 90, 99, 100} {
				if len(v) == 0 {
					row = append(row, "-") // every seed failed: nothing measured
				} else {
					row = append(row, us(percentile(v, p)))
				}
			}
			rows = append(rows, row)
		}
	}
	writeRows(w, header, rows, markdown)
	// False suspicions: before the fault every peer is alive, so each
	// verdict turned failed is wrong.
	fmt.Fprintln(w)
	for ci, c := range configs {
		var sus, smp uint64
		var nodeNs float64
		for _, s := range results[ci].samples {
			sus, smp = sus+s.suspicions, smp+s.samples
			nodeNs += float64(s.preFaultNs) * float64(c.replicas)
		}
		if smp > 0 && nodeNs > 0 {
			fmt.Fprintf(w, "false suspicions before the fault, %s: %d in %d sampling rounds (%.2g per round, %.1f per node per virtual minute)\n",
				c, sus, smp, float64(sus)/float64(smp), float64(sus)/(nodeNs/60e9))
		}
	}
}

func writeRows(w io.Writer, header []string, rows [][]string, markdown bool) {
	if markdown {
		fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
		sep := make([]string, len(header))
		for i := range sep {
			sep[i] = "---"
		}
		fmt.Fprintf(w, "|%s|\n", strings.Join(sep, "|"))
		for _, r := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// printPeers measures the raft libraries (wall clock, 3 nodes in memory,
// leader isolated) and prints them beside mu's simulated failovers. The
// raft figures vary from run to run; mu's rows do not.
func printPeers(w io.Writer, configs []config, results []outcome, proposals, failovers int, markdown bool) error {
	cfg := peers.DefaultConfig()
	cfg.Proposals, cfg.Failovers = proposals, failovers
	cfg.WarmupProposals = min(cfg.WarmupProposals, proposals)
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var rows []peers.Row
	for ci, c := range configs {
		v := sortedBy(results[ci].samples, func(s sample) int64 { return s.totalNs })
		e := sortedBy(results[ci].samples, func(s sample) int64 { return s.totalNs - s.firstNs })
		rows = append(rows, peers.Row{
			System:        fmt.Sprintf("mu-sim-%d-%s%s", c.replicas, c.fault, map[bool]string{true: "-mu-detector"}[c.mu]),
			FailoverCount: int64(len(v)),
			FailoverP50Ns: percentile(v, 50), FailoverP99Ns: percentile(v, 99), ElectionP50Ns: percentile(e, 50),
			Settings: "virtual time, rxe-fitted sim",
		})
	}
	for _, run := range []struct {
		name string
		f    func() (*peers.Result, error)
	}{
		{"etcd-raft", func() (*peers.Result, error) { return peers.RunEtcd(ctx, cfg, peers.DefaultEtcdTuning()) }},
		{"hashicorp-raft", func() (*peers.Result, error) { return peers.RunHashicorp(ctx, cfg, peers.DefaultHashicorpTuning()) }},
	} {
		t0 := time.Now()
		res, err := run.f()
		if err != nil {
			return fmt.Errorf("%s: %w", run.name, err)
		}
		fmt.Fprintf(os.Stderr, "simfailover: %s done in %s wall\n", run.name, time.Since(t0).Round(time.Millisecond))
		rows = append(rows, res.Row())
	}
	fmt.Fprintf(w, "raft peers (3 nodes in one process, wall clock on this machine, %d isolations each) beside mu on the simulator:\n\n", failovers)
	var err error
	if markdown {
		err = peers.WriteMarkdown(w, rows)
	} else {
		err = peers.WriteTable(w, rows)
	}
	if err != nil {
		return err
	}
	// mu's target is failover at least 50x faster than the raft peers.
	fmt.Fprintln(w)
	for _, raft := range rows[len(configs):] {
		for _, mu := range rows[:len(configs)] {
			if mu.FailoverP50Ns > 0 {
				fmt.Fprintf(w, "failover p50 ratio %s / %s: %.1fx\n", raft.System, mu.System, float64(raft.FailoverP50Ns)/float64(mu.FailoverP50Ns))
			}
		}
	}
	return nil
}
