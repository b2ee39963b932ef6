package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
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
		Short: "ask every node's client endpoint for its leader, scores, health, commit index and recent commit latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addrs, dial, err := clientTargets(path, addrs, ca, cert, key)
			if err != nil {
				return err
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

// statusAnswer is one node's answer to a status request, or why none came.
type statusAnswer struct {
	addr string
	st   nodeStatus
	err  error
}

// queryStatus asks every node at once, each within timeout, so one that
// hangs delays the others' rows by no more than that.
func queryStatus(ctx context.Context, addrs []string, dial endpoint.DialFunc, timeout time.Duration) []statusAnswer {
	out := make([]statusAnswer, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newNodeClientDial(a, dial)
			defer c.close()
			qctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			st, err := c.status(qctx)
			out[i] = statusAnswer{addr: a, st: st, err: err}
		}()
	}
	wg.Wait()
	return out
}

// writeStatus prints the group's summary, one row per node and the reasons
// behind hardware verdicts and fail-slow flags; it returns how many nodes
// did not answer. dial reaches each node (nil: plain TCP).
func writeStatus(ctx context.Context, w io.Writer, addrs []string, dial endpoint.DialFunc, timeout time.Duration) (down int) {
	return renderStatus(w, queryStatus(ctx, addrs, dial, timeout), nil)
}

// lastAnswer is a node's latest status and when it came, so a watch can
// still name a node that stopped answering and say what it was.
type lastAnswer struct {
	st nodeStatus
	at time.Time
}

// renderStatus writes answers as writeStatus does; seen (nil: none) names
// the nodes that no longer answer.
func renderStatus(w io.Writer, answers []statusAnswer, seen map[string]lastAnswer) (down int) {
	fmt.Fprintln(w, groupSummary(answers))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "node\taddress\trole\tleader\tcommit\tapplied\tcommit p50/p99\thealth\thardware\tpeer scores (0..15, * failed)")
	var reasons []string
	for _, a := range answers {
		st := a.st
		if a.err != nil {
			down++
			// The error goes below the table: its length would widen
			// the role column of every row.
			id, was := "?", ""
			if last, ok := seen[a.addr]; ok {
				id = fmt.Sprint(last.st.ID)
				was = fmt.Sprintf(" (%s when last seen at %s)", role(last.st), last.at.Format(watchStamp))
			}
			fmt.Fprintf(tw, "%s\t%s\tunreachable\t\t\t\t\t\t\t\n", id, a.addr)
			reasons = append(reasons, fmt.Sprintf("%s: no answer%s: %v", a.addr, was, a.err))
			continue
		}
		leader := "none"
		if st.LeaderKnown {
			leader = fmt.Sprint(st.Leader)
		}
		var scores []string
		for _, id := range slices.Sorted(maps.Keys(st.Scores)) {
			mark := ""
			if !st.Alive[id] {
				mark = "*"
			}
			scores = append(scores, fmt.Sprintf("%d:%d%s(%s)", id, st.Scores[id], mark, st.PeerHealth[id]))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", st.ID, a.addr, role(st), leader, st.Commit, st.Applied,
			latencyPair(st), st.Health, st.Hardware, strings.Join(scores, " "))
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

func role(st nodeStatus) string {
	switch {
	case st.Fenced:
		return "fenced"
	case st.IsLeader:
		return "leader"
	case len(st.Voters) > 0 && !slices.Contains(st.Voters, st.ID):
		return "learner"
	case st.Rejoining:
		return "follower (rejoined)"
	}
	return "follower"
}

// groupSummary is one line: the leader most answering nodes name (and how
// many), the highest commit index, the commit latency at the node that
// calls itself leader, and the fail-slow followers it flags.
func groupSummary(answers []statusAnswer) string {
	named := map[rdma.NodeID]int{}
	up := 0
	var commit consensus.Index
	var self *nodeStatus
	for i := range answers {
		a := &answers[i]
		if a.err != nil {
			continue
		}
		up++
		commit = max(commit, a.st.Commit)
		if a.st.LeaderKnown {
			named[a.st.Leader]++
		}
		if a.st.IsLeader && !a.st.Fenced {
			self = &a.st
		}
	}
	leader := "none"
	if len(named) > 0 {
		// The most named; ties go to the lowest id, like the detector's choice.
		best := slices.MaxFunc(slices.Sorted(maps.Keys(named)), func(x, y rdma.NodeID) int {
			if c := cmp.Compare(named[x], named[y]); c != 0 {
				return c
			}
			return cmp.Compare(y, x)
		})
		leader = fmt.Sprintf("%d (named by %d of %d answering)", best, named[best], up)
	}
	lat := "commit p50/p99 -"
	slow := "none"
	if self != nil {
		if self.CommitSamples > 0 {
			lat = fmt.Sprintf("commit p50 %s p99 %s (node %d, %d proposals in %v)", shortLatency(self.CommitP50Ns),
				shortLatency(self.CommitP99Ns), self.ID, self.CommitSamples, commitWindowAge)
		}
		if len(self.FailSlow) > 0 {
			var ids []string
			for _, id := range slices.Sorted(maps.Keys(self.FailSlow)) {
				ids = append(ids, fmt.Sprint(id))
			}
			slow = strings.Join(ids, ",")
		}
	}
	voters := ""
	if self != nil && len(self.Voters) > 0 && len(self.Voters) < up {
		// Only when some answering node is a learner: the usual group
		// is all voters.
		voters = fmt.Sprintf("  voters %s", strings.Trim(fmt.Sprint(self.Voters), "[]"))
	}
	return fmt.Sprintf("group: %d of %d nodes answer  leader %s  commit %d  %s  fail-slow followers: %s%s",
		up, len(answers), leader, commit, lat, slow, voters)
}

// latencyPair is a node's recent commit p50/p99, or "-" when it took no
// proposal lately (a follower).
func latencyPair(st nodeStatus) string {
	if st.CommitSamples == 0 {
		return "-"
	}
	return shortLatency(st.CommitP50Ns) + "/" + shortLatency(st.CommitP99Ns)
}

// shortLatency writes ns with up to three significant digits in µs, ms or
// s.
func shortLatency(ns int64) string {
	v, unit := float64(ns)/1e3, "µs"
	switch {
	case ns >= 1e9:
		v, unit = float64(ns)/1e9, "s"
	case ns >= 1e6:
		v, unit = float64(ns)/1e6, "ms"
	}
	prec := 2
	switch {
	case v >= 100:
		prec = 0
	case v >= 10:
		prec = 1
	}
	// "1ms", not "1.00ms": trailing zeros say nothing.
	return trimZeros(strconv.FormatFloat(v, 'f', prec, 64)) + unit
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// clientTargets resolves the nodes a client command talks to and how it
// dials them: the client_address of every member of --config (with the
// config's credentials) or --addr, and --ca/--cert/--key when given.
func clientTargets(path string, addrs []string, ca, cert, key string) ([]string, endpoint.DialFunc, error) {
	if path == "" && len(addrs) == 0 {
		return nil, nil, errors.New("give --config (the nodes' client_address values are used) or --addr")
	}
	var dial endpoint.DialFunc
	if path != "" {
		cfg, err := LoadConfig(path)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range cfg.Peers {
			addrs = append(addrs, p.ClientAddress)
		}
		creds, err := cfg.Credentials()
		if err != nil {
			return nil, nil, err
		}
		dial = tlsDial(creds, 0)
	}
	if ca != "" || cert != "" || key != "" {
		creds, err := clustertls.LoadFiles(ca, cert, key)
		if err != nil {
			return nil, nil, err
		}
		dial = tlsDial(creds, 0)
	}
	return addrs, dial, nil
}
