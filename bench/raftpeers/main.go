// Command raftpeers measures etcd raft and hashicorp/raft on this machine in
// one run — commit latency of sequential proposals and failover time after
// the leader is isolated — and prints a table. See package peers for the
// definitions; mu's own figures are meant to be printed next to these.
//
//	cd bench && go run ./raftpeers -proposals 20000 -failovers 20
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"time"

	"github.com/rdmaconsensus/mu/bench/raftpeers/peers"
)

func main() {
	cfg := peers.DefaultConfig()
	et := peers.DefaultEtcdTuning()
	ht := peers.DefaultHashicorpTuning()
	flag.IntVar(&cfg.Proposals, "proposals", cfg.Proposals, "sequential proposals measured per system")
	flag.IntVar(&cfg.WarmupProposals, "warmup", cfg.WarmupProposals, "proposals before measuring")
	flag.IntVar(&cfg.PayloadBytes, "payload", cfg.PayloadBytes, "bytes per proposal (>= 8)")
	flag.IntVar(&cfg.Failovers, "failovers", cfg.Failovers, "leader isolations measured per system")
	flag.DurationVar(&et.TickInterval, "etcd-tick", et.TickInterval, "etcd raft tick interval")
	flag.IntVar(&et.ElectionTicks, "etcd-election-ticks", et.ElectionTicks, "etcd raft election timeout in ticks")
	flag.IntVar(&et.HeartbeatTick, "etcd-heartbeat-ticks", et.HeartbeatTick, "etcd raft heartbeat interval in ticks")
	flag.DurationVar(&ht.HeartbeatTimeout, "hc-heartbeat", ht.HeartbeatTimeout, "hashicorp HeartbeatTimeout (>= 5ms)")
	flag.DurationVar(&ht.ElectionTimeout, "hc-election", ht.ElectionTimeout, "hashicorp ElectionTimeout (>= heartbeat)")
	flag.DurationVar(&ht.LeaderLeaseTimeout, "hc-lease", ht.LeaderLeaseTimeout, "hashicorp LeaderLeaseTimeout (<= heartbeat)")
	flag.DurationVar(&ht.CommitTimeout, "hc-commit", ht.CommitTimeout, "hashicorp CommitTimeout (>= 1ms)")
	only := flag.String("only", "", "run one system: etcd or hashicorp")
	markdown := flag.Bool("markdown", false, "print a Markdown table instead of text")
	flag.Parse()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "raftpeers:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintf(os.Stderr, "raftpeers: %s %s/%s GOMAXPROCS=%d NumCPU=%d, %d proposals x %d B, %d failovers\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU(),
		cfg.Proposals, cfg.PayloadBytes, cfg.Failovers)

	var rows []peers.Row
	run := func(name string, f func() (*peers.Result, error)) {
		start := time.Now()
		res, err := f()
		if err != nil {
			fmt.Fprintf(os.Stderr, "raftpeers: %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "raftpeers: %s done in %s\n", name, time.Since(start).Round(time.Millisecond))
		rows = append(rows, res.Row())
	}
	if *only == "" || *only == "etcd" {
		run("etcd-raft", func() (*peers.Result, error) { return peers.RunEtcd(ctx, cfg, et) })
	}
	if *only == "" || *only == "hashicorp" {
		run("hashicorp-raft", func() (*peers.Result, error) { return peers.RunHashicorp(ctx, cfg, ht) })
	}
	var err error
	if *markdown {
		err = peers.WriteMarkdown(os.Stdout, rows)
	} else {
		err = peers.WriteTable(os.Stdout, rows)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "raftpeers:", err)
		os.Exit(1)
	}
}
