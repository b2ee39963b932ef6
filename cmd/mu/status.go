package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/rdma"
)

func newStatusCmd() *cobra.Command {
	var (
		path          string
		addrs         []string
		timeout       time.Duration
		ca, cert, key string
		watch         bool
		interval      time.Duration
	)
	c := &cobra.Command{
		Use:   "status (--config FILE | --addr HOST:PORT,...)",
		Short: "ask every node's client endpoint for its leader, scores, health and commit index",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" && len(addrs) == 0 {
				return errors.New("give --config (the nodes' client_address values are used) or --addr")
			}
			var dial endpoint.DialFunc
			if path != "" {
				cfg, err := LoadConfig(path)
				if err != nil {
					return err
				}
				for _, p := range cfg.Peers {
					addrs = append(addrs, p.ClientAddress)
				}
				creds, err := cfg.Credentials()
				if err != nil {
					return err
				}
				dial = tlsDial(creds, 0)
			}
			if ca != "" || cert != "" || key != "" {
				creds, err := clustertls.LoadFiles(ca, cert, key)
				if err != nil {
					return err
				}
				dial = tlsDial(creds, 0)
			}
			if watch {
				return watchStatus(cmd.Context(), cmd.OutOrStdout(), addrs, dial, timeout, interval)
			}
			down := writeStatus(cmd.Context(), cmd.OutOrStdout(), addrs, dial, timeout)
			if down == len(addrs) {
				return errors.New("no node answered")
			}
			return nil
		},
	}
	c.Flags().StringVar(&path, "config", "", "a node config file of the cluster")
	c.Flags().StringSliceVar(&addrs, "addr", nil, "client endpoints to ask (host:port, comma-separated)")
	c.Flags().DurationVar(&timeout, "timeout", time.Second, "how long to wait for each node")
	c.Flags().BoolVar(&watch, "watch", false, "redraw the status every --interval until interrupted")
	c.Flags().DurationVar(&interval, "interval", time.Second, "with --watch, time between redraws")
	c.Flags().StringVar(&ca, "ca", "", "cluster CA certificate, for TLS with --addr (--config brings its own)")
	c.Flags().StringVar(&cert, "cert", "", "client certificate (mu certs issue --client NAME)")
	c.Flags().StringVar(&key, "key", "", "client key")
	return c
}

// writeStatus prints one row per node and returns how many did not answer.
// dial reaches each node (nil: plain TCP).
func writeStatus(ctx context.Context, w io.Writer, addrs []string, dial endpoint.DialFunc, timeout time.Duration) (down int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "node\taddress\trole\tleader\tcommit\tapplied\thealth\thardware\tpeer scores (0..15, * failed)")
	var reasons []string
	for _, a := range addrs {
		c := newNodeClientDial(a, dial)
		qctx, cancel := context.WithTimeout(ctx, timeout)
		st, err := c.status(qctx)
		cancel()
		c.close()
		if err != nil {
			down++
			fmt.Fprintf(tw, "?\t%s\tunreachable: %v\t\t\t\t\t\t\n", a, err)
			continue
		}
		role := "follower"
		switch {
		case st.Fenced:
			role = "fenced"
		case st.IsLeader:
			role = "leader"
		case st.Rejoining:
			role = "follower (rejoined)"
		}
		leader := "none"
		if st.LeaderKnown {
			leader = fmt.Sprint(st.Leader)
		}
		var scores []string
		for _, id := range slices.Sorted(func(y func(rdma.NodeID) bool) {
			for id := range st.Scores {
				if !y(id) {
					return
				}
			}
		}) {
			mark := ""
			if !st.Alive[id] {
				mark = "*"
			}
			scores = append(scores, fmt.Sprintf("%d:%d%s(%s)", id, st.Scores[id], mark, st.PeerHealth[id]))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", st.ID, a, role, leader, st.Commit, st.Applied, st.Health, st.Hardware, strings.Join(scores, " "))
		for _, r := range st.HardwareWhy {
			reasons = append(reasons, fmt.Sprintf("node %d: %s", st.ID, r))
		}
		for _, id := range slices.Sorted(maps.Keys(st.FailSlow)) {
			reasons = append(reasons, fmt.Sprintf("node %d: follower %d fail-slow (%s)", st.ID, id, st.FailSlow[id]))
		}
	}
	tw.Flush()
	for _, r := range reasons {
		fmt.Fprintln(w, r)
	}
	return down
}
