// Command mu runs and inspects mu nodes: a replica process (node), its state
// (status), this machine's hardware health (health), a replicated order book
// with a leader crash (demo), and failover and replication benchmarks (bench).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit status out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "mu",
		Short:         "microsecond state-machine replication over one-sided RDMA",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newHealthCmd(), newCheckConfigCmd(), newCertsCmd(), newDemoCmd(), newNodeCmd(), newStatusCmd(), newBenchCmd())
	root.AddCommand(newTransferCmd())
	root.AddCommand(newMemberCmd())
	return root
}

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	var ee exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "mu:", err)
	os.Exit(1)
}

func newCheckConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check-config FILE",
		Short: "validate a `mu node` config file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := LoadConfig(args[0])
			if err != nil {
				return err
			}
			for _, w := range c.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "mu: warning:", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: node %d of %d, cluster %#x: ok\n", args[0], c.ID, len(c.Peers), c.ClusterID)
			return nil
		},
	}
}
