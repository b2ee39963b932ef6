package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/hwmon"
)

func newHealthCmd() *cobra.Command {
	var (
		configPath string
		span       time.Duration
		rasDB      string
	)
	c := &cobra.Command{
		Use:   "health",
		Short: "read this machine's hardware signals once and print the arbiter's verdict",
		Long: `health reads every hardware signal the arbiter uses (ECC, SMART, disk
latency, RDMA and netdev counters, CPU throttling) twice, --span apart, and
prints the verdict, its reasons, and every signal: what was read, or why it is
unavailable on this machine. Thresholds come from --config when given.
Exit status: 0 healthy, 3 degraded, 4 failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hc := hwmon.DefaultConfig()
			hc.OnceSpan = span
			if rasDB != "" {
				hc.RasdaemonDB = rasDB
			}
			if configPath != "" {
				nc, err := LoadConfig(configPath)
				if err != nil {
					return err
				}
				nc.ApplyHwmon(&hc)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), span+30*time.Second)
			defer cancel()
			rep, err := hwmon.CollectOnce(ctx, hc)
			if err != nil {
				return err
			}
			if err := rep.WriteText(cmd.OutOrStdout()); err != nil {
				return err
			}
			switch rep.Verdict {
			case hwmon.Degraded:
				return exitError{3}
			case hwmon.Failed:
				return exitError{4}
			}
			return nil
		},
	}
	c.Flags().StringVar(&configPath, "config", "", "node config file whose hwmon thresholds to apply")
	c.Flags().DurationVar(&span, "span", time.Second, "time between the two readings (disk latency is a delta)")
	c.Flags().StringVar(&rasDB, "rasdaemon-db", "", "rasdaemon database (default: hwmon's default path)")
	return c
}
