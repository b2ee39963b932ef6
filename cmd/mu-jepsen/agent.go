package main

import (
	"os"
	"path/filepath"

	"github.com/rdmaconsensus/mu/jepsen"
	"github.com/spf13/cobra"
)

func newAgentCmd() *cobra.Command {
	var o jepsen.AgentOptions
	c := &cobra.Command{
		Use:   "agent",
		Short: "the control agent inside one VM (started by scripts/softroce/cluster)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.MuBin == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				o.MuBin = filepath.Join(filepath.Dir(exe), "mu")
			}
			return jepsen.RunAgent(cmd.Context(), o)
		},
	}
	f := c.Flags()
	f.IntVar(&o.ID, "id", 0, "this VM's node id")
	f.StringVar(&o.Listen, "listen", "", "control address (on the user-mode NIC)")
	f.StringVar(&o.Proxy, "proxy", "", "LISTEN=TARGET relay to the node's client endpoint")
	f.StringVar(&o.Modules, "modules", "", "directory of kernel modules to insmod (its order file)")
	f.StringVar(&o.Dir, "dir", "", "this VM's run directory (node.yaml, node.log)")
	f.StringVar(&o.MuBin, "mu", "", "mu binary (default: mu beside this one)")
	return c
}
