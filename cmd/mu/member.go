package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/rdma"
)

// maxMemberTimeout bounds how long a node lets one membership request run.
const maxMemberTimeout = 5 * time.Minute

// answerMember serves ReqMember: the leader adds or removes a voter
// (node.AddVoter, node.RemoveVoter).
func (s *nodeServer) answerMember(ctx context.Context, body, out []byte) (byte, []byte) {
	nd := s.node()
	if nd == nil {
		return endpoint.ErrorAnswer(out, endpoint.CodeStopped, "replica not running yet (connecting to peers)")
	}
	add, id, ms, err := endpoint.DecodeMember(body)
	if err != nil {
		return endpoint.ErrorAnswer(out, endpoint.CodeOther, err.Error())
	}
	mctx, cancel := context.WithTimeout(ctx, min(time.Duration(ms)*time.Millisecond, maxMemberTimeout))
	defer cancel()
	if add {
		err = nd.n.AddVoter(mctx, id)
	} else {
		err = nd.n.RemoveVoter(mctx, id)
	}
	return s.answerLeaderOp(out, err, consensus.ErrNotCaughtUp, consensus.ErrConfChangeBusy)
}

func newMemberCmd() *cobra.Command {
	var (
		path          string
		addrs         []string
		timeout       time.Duration
		ca, cert, key string
	)
	targets := func() ([]string, endpoint.DialFunc, error) { return clientTargets(path, addrs, ca, cert, key) }
	c := &cobra.Command{
		Use:   "member add|remove|list",
		Short: "change or list the voters while the group runs: add promotes a learner (a peer not among the voters), remove demotes a voter",
	}
	change := func(add bool) *cobra.Command {
		use, short := "remove ID", "make voter ID a learner (never below three voters); the leader steps down if it is ID"
		if add {
			use, short = "add ID", "make learner ID a voter, once it has caught up"
		}
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var id uint16
				if _, err := fmt.Sscan(args[0], &id); err != nil || id == 0 {
					return fmt.Errorf("%q is not a node id", args[0])
				}
				addrs, dial, err := targets()
				if err != nil {
					return err
				}
				return changeMember(cmd.Context(), cmd.OutOrStdout(), addrs, dial, add, rdma.NodeID(id), timeout)
			},
		}
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "each node's view of the voters and the learners",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addrs, dial, err := targets()
			if err != nil {
				return err
			}
			return listMembers(cmd.Context(), cmd.OutOrStdout(), addrs, dial)
		},
	}
	c.AddCommand(change(true), change(false), list)
	f := c.PersistentFlags()
	f.StringVar(&path, "config", "", "a node config file of the cluster")
	f.StringSliceVar(&addrs, "addr", nil, "client endpoints (host:port, comma-separated)")
	f.DurationVar(&timeout, "timeout", time.Minute, "how long the change may take (a learner must catch up first)")
	f.StringVar(&ca, "ca", "", "cluster CA certificate, for TLS with --addr (--config brings its own)")
	f.StringVar(&cert, "cert", "", "client certificate (mu certs issue --client NAME)")
	f.StringVar(&key, "key", "", "client key")
	return c
}

// changeMember finds the leader among addrs and asks it for the change;
// a node that no longer leads when asked names the leader, which is asked
// in turn.
func changeMember(ctx context.Context, w io.Writer, addrs []string, dial endpoint.DialFunc, add bool, id rdma.NodeID, timeout time.Duration) error {
	leader := ""
	byID := map[rdma.NodeID]string{}
	for _, a := range queryStatus(ctx, addrs, dial, time.Second) {
		if a.err == nil {
			byID[a.st.ID] = a.addr
			if a.st.IsLeader {
				leader = a.addr
			}
		}
	}
	if leader == "" {
		return errNoLeader
	}
	mctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	start := time.Now()
	var err error
	for hops := 0; ; hops++ {
		cl := newNodeClientDial(leader, dial)
		var t byte
		var b []byte
		t, b, err = cl.call(mctx, endpoint.ReqMember, endpoint.EncodeMember(add, id, uint64(timeout/time.Millisecond)))
		cl.close()
		if err == nil {
			_, err = endpoint.DecodeBodyAnswer(t, b)
		}
		var nl *consensus.NotLeaderError
		if errors.As(err, &nl) && nl.Known && byID[nl.Leader] != "" && hops < 2 {
			leader = byID[nl.Leader]
			continue
		}
		break
	}
	verb := "remove"
	if add {
		verb = "add"
	}
	if err != nil {
		return fmt.Errorf("member %s %d: %w", verb, id, err)
	}
	fmt.Fprintf(w, "member %s %d: in force after %v\n", verb, id, time.Since(start).Round(time.Microsecond))
	return nil
}

// listMembers prints each node's view of the voters.
func listMembers(ctx context.Context, w io.Writer, addrs []string, dial endpoint.DialFunc) error {
	answers := queryStatus(ctx, addrs, dial, time.Second)
	ok := 0
	for _, a := range answers {
		if a.err != nil {
			fmt.Fprintf(w, "%s: %v\n", a.addr, a.err)
			continue
		}
		ok++
		role := "follower"
		if a.st.IsLeader {
			role = "leader"
		}
		if !slices.Contains(a.st.Voters, a.st.ID) {
			role = "learner"
		}
		v := make([]string, len(a.st.Voters))
		for i, id := range a.st.Voters {
			v[i] = fmt.Sprint(id)
		}
		fmt.Fprintf(w, "node %d (%s): voters %s\n", a.st.ID, role, strings.Join(v, " "))
	}
	if ok == 0 {
		return errors.New("no node answered")
	}
	return nil
}
