package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/rdma"
)

func newCertsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "certs",
		Short: "make a cluster's credentials: a CA, node and client certificates (ECDSA P-256)",
		Long: `certs makes the credentials of mutual TLS 1.3 between nodes and with clients.

  mu certs init --dir DIR                  the cluster CA: DIR/ca.pem, DIR/ca-key.pem
  mu certs issue --dir DIR --node ID       DIR/nodeID.pem, DIR/nodeID-key.pem
  mu certs issue --dir DIR --client NAME   DIR/client-NAME.pem, DIR/client-NAME-key.pem

Each certificate names its holder (URI SAN mu://node/ID or mu://client/NAME);
a node accepts a peer only if its certificate chains to the CA and names the
node its handshake claims to be. Give every node ca.pem and its own pair
(security.ca, security.cert, security.key); keep ca-key.pem off the nodes.
Issuing again replaces a holder's pair: that is how it is rotated.`,
	}
	var (
		dir, name  string
		days       int
		node       uint16
		clientName string
	)
	initCmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "make the cluster CA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--dir is required")
			}
			if err := clustertls.InitDir(dir, name, time.Duration(days)*24*time.Hour); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CA written to %s/%s (key %s/%s: keep it off the nodes)\n", dir, clustertls.CAFile, dir, clustertls.CAKeyFile)
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory for the CA")
	initCmd.Flags().StringVar(&name, "name", "mu", "cluster name in the CA's subject")
	initCmd.Flags().IntVar(&days, "days", 3650, "validity in days")

	issueCmd := &cobra.Command{
		Use:   "issue --dir DIR (--node ID | --client NAME)",
		Short: "issue a node's or a client's certificate with the CA in DIR",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--dir is required")
			}
			var id clustertls.Identity
			switch {
			case node != 0 && clientName != "":
				return errors.New("give --node or --client, not both")
			case node != 0:
				id = clustertls.NodeIdentity(rdma.NodeID(node))
			case clientName != "":
				id = clustertls.ClientIdentity(clientName)
			default:
				return errors.New("give --node ID or --client NAME")
			}
			cert, key, err := clustertls.IssueInDir(dir, id, time.Duration(days)*24*time.Hour)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%v: %s, %s\n", id, cert, key)
			return nil
		},
	}
	issueCmd.Flags().StringVar(&dir, "dir", "", "directory holding the CA")
	issueCmd.Flags().Uint16Var(&node, "node", 0, "node id")
	issueCmd.Flags().StringVar(&clientName, "client", "", "client name")
	issueCmd.Flags().IntVar(&days, "days", 365, "validity in days (at most the CA's)")
	c.AddCommand(initCmd, issueCmd)
	return c
}
