// Command mu-jepsen runs seeded fault schedules against a group of `mu node`
// replicas, one per Soft-RoCE VM (scripts/softroce/cluster), and checks the
// clients' history: no acknowledged order lost, linearizable. `agent` is
// the part that runs inside each VM. See docs/jepsen.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{Use: "mu-jepsen", Short: "fault schedules on a cluster of Soft-RoCE VMs", SilenceUsage: true}
	root.AddCommand(newAgentCmd(), newRunCmd(), newScheduleCmd())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mu-jepsen:", err)
		os.Exit(1)
	}
}
