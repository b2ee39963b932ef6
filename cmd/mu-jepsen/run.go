package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rdmaconsensus/mu/jepsen"
	"github.com/spf13/cobra"
)

type scheduleFlags struct {
	seed     uint64
	duration time.Duration
	nodes    int
	kinds    string
	hold     time.Duration
	quiet    time.Duration
}

func (f *scheduleFlags) add(c *cobra.Command) {
	fs := c.Flags()
	fs.Uint64Var(&f.seed, "seed", 0, "schedule seed (0: from the clock, printed)")
	fs.DurationVar(&f.duration, "duration", 2*time.Minute, "total time of the schedule's faults and quiet gaps")
	fs.IntVar(&f.nodes, "nodes", 0, "nodes (default: the cluster's, else 3)")
	fs.StringVar(&f.kinds, "kinds", "", "comma-separated fault kinds (default all: "+kindList()+")")
	fs.DurationVar(&f.hold, "hold-max", 0, "longest fault (default 8s; shortest is 3s)")
	fs.DurationVar(&f.quiet, "quiet-max", 0, "longest healed gap after a fault (default 10s; shortest 5s)")
}

func kindList() string {
	var s []string
	for _, k := range jepsen.AllKinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}

func (f *scheduleFlags) options(nodes int) jepsen.ScheduleOptions {
	if f.seed == 0 {
		f.seed = uint64(time.Now().UnixNano()) % 1_000_000
	}
	o := jepsen.DefaultScheduleOptions(f.seed, f.duration, nodes)
	if f.hold > 0 {
		o.HoldMax = max(f.hold, o.HoldMin)
	}
	if f.quiet > 0 {
		o.QuietMax = max(f.quiet, o.QuietMin)
	}
	if f.kinds != "" {
		for _, k := range strings.Split(f.kinds, ",") {
			o.Kinds = append(o.Kinds, jepsen.Kind(strings.TrimSpace(k)))
		}
	}
	return o
}

func newScheduleCmd() *cobra.Command {
	var f scheduleFlags
	c := &cobra.Command{
		Use:   "schedule",
		Short: "print the schedule a seed gives, without running it",
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := f.nodes
			if n == 0 {
				n = 3
			}
			steps, err := jepsen.NewSchedule(f.options(n))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "seed %d, %d nodes, %v\n", f.seed, n, f.duration)
			for i, s := range steps {
				fmt.Fprintf(cmd.OutOrStdout(), "%3d %s\n", i+1, s)
			}
			return nil
		},
	}
	f.add(c)
	return c
}

func newRunCmd() *cobra.Command {
	var (
		f       scheduleFlags
		clients int
		out     string
		t       jepsen.Timings
	)
	c := &cobra.Command{
		Use:   "run",
		Short: "run a seeded fault schedule on the VMs of scripts/softroce/cluster and check the history",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := jepsen.ClusterFromEnv()
			if err != nil {
				return err
			}
			defer cl.Close()
			if f.nodes != 0 && f.nodes != cl.N {
				return fmt.Errorf("--nodes %d but the cluster has %d", f.nodes, cl.N)
			}
			o := jepsen.RunOptions{Schedule: f.options(cl.N), Clients: clients, Timings: t,
				StartTimeout: 3 * time.Minute, SettleTimeout: 3 * time.Minute, Log: cmd.ErrOrStderr()}
			res, err := jepsen.Run(cmd.Context(), cl, o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			res.WriteSummary(w)
			if out != "" {
				if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
					return err
				}
				var b strings.Builder
				res.WriteSummary(&b)
				if err := os.WriteFile(out+".txt", []byte(b.String()), 0o644); err != nil {
					return err
				}
				title := fmt.Sprintf("mu on %d Soft-RoCE VMs, seed %d", cl.N, f.seed)
				for _, ext := range []string{".png", ".svg"} {
					if err := res.SaveTimeline(out+ext, title); err != nil {
						return err
					}
				}
				if err := saveData(out+".json", res); err != nil {
					return err
				}
				fmt.Fprintf(w, "report %s.{txt,png,svg,json}\n", out)
			}
			if !res.OK() {
				return errors.New("no order acknowledged, lost acknowledged orders, diverging logs, a non-linearizable history or nodes not caught up: see above")
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().IntVar(&clients, "clients", 2, "concurrent clients, each submitting one order at a time")
	c.Flags().StringVar(&out, "out", "", "write PATH.txt (summary), PATH.png and PATH.svg (timeline), PATH.json (steps, leader samples, acknowledgement times)")
	c.Flags().DurationVar(&t.ReadInterval, "read-interval", 0, "pullscore_read_interval of every node (0: mu's default)")
	c.Flags().DurationVar(&t.PermissionTimeout, "permission-timeout", 0, "permission_timeout of every node (0: mu's default)")
	c.Flags().DurationVar(&t.HandshakeTimeout, "handshake-timeout", 0, "handshake_timeout of every node (0: mu's default)")
	return c
}

// saveData keeps what the timeline is drawn from, and the step results,
// for later comparison (the history's commands are left out: they are in
// the nodes' logs).
func saveData(path string, r *jepsen.Result) error {
	type ack struct{ RetNs, Index int64 }
	d := struct {
		Seed    uint64
		Nodes   int
		StartNs int64
		EndNs   int64
		Steps   []jepsen.StepResult
		Samples []jepsen.Sample
		Acks    []ack
		Logs    map[int]jepsen.NodeLog
	}{Logs: r.Logs, Seed: r.Opts.Schedule.Seed, Nodes: r.Opts.Schedule.Nodes, StartNs: r.StartNs, EndNs: r.EndNs, Steps: r.Steps, Samples: r.Samples}
	for _, o := range r.History {
		if o.Acked {
			d.Acks = append(d.Acks, ack{o.RetNs, int64(o.Index)})
		}
	}
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
