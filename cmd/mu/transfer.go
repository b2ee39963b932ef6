package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/rdma"
)

// errNoLeader: no node answering says it leads (leadership is moving).
var errNoLeader = errors.New("no node says it leads; try again")

// maxTransferTimeout bounds how long a node lets one transfer request run.
const maxTransferTimeout = time.Minute

// answerTransfer serves ReqTransfer: the node hands leadership to the
// target (node.TransferLeadership). Over mutual TLS the client is already
// authenticated by the cluster CA, like every request.
func (s *nodeServer) answerTransfer(ctx context.Context, body, out []byte) (byte, []byte) {
	nd := s.node()
	if nd == nil {
		return endpoint.ErrorAnswer(out, endpoint.CodeStopped, "replica not running yet (connecting to peers)")
	}
	to, ms, err := endpoint.DecodeTransfer(body)
	if err != nil {
		return endpoint.ErrorAnswer(out, endpoint.CodeOther, err.Error())
	}
	d := min(time.Duration(ms)*time.Millisecond, maxTransferTimeout)
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err = nd.n.TransferLeadership(tctx, to)
	return s.answerLeaderOp(out, err, consensus.ErrTransferTimeout, consensus.ErrTransferBusy)
}

// answerLeaderOp answers a request the leader carries out (a transfer, a
// membership change) that ended with err; timeout and busy are the
// operation's own errors for running out of time and for one already
// under way.
func (s *nodeServer) answerLeaderOp(out []byte, err, timeout, busy error) (byte, []byte) {
	var nl *consensus.NotLeaderError
	switch {
	case err == nil:
		return endpoint.RespOK, out
	case errors.As(err, &nl):
		addr := ""
		if p, ok := s.cfg.Peer(nl.Leader); ok && nl.Known {
			addr = p.ClientAddress
		}
		return endpoint.NotLeaderAnswer(out, nl.Leader, nl.Known, addr)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, timeout):
		return endpoint.ErrorAnswer(out, endpoint.CodeTimeout, err.Error())
	case errors.Is(err, busy):
		return endpoint.ErrorAnswer(out, endpoint.CodeBusy, err.Error())
	case errors.Is(err, consensus.ErrLeadershipLost):
		// Another node took over first; the outcome is the new leader's
		// to tell: ask whoever leads.
		return endpoint.ErrorAnswer(out, endpoint.CodeUnknownOutcome, err.Error())
	}
	return endpoint.ErrorAnswer(out, endpoint.CodeOther, err.Error())
}

// transfer asks the node at c, which should lead, to hand over to to; it
// returns once to leads, or a *consensus.NotLeaderError when c does not
// lead.
func (c *nodeClient) transfer(ctx context.Context, to rdma.NodeID, timeout time.Duration) error {
	t, b, err := c.call(ctx, endpoint.ReqTransfer, endpoint.EncodeTransfer(to, uint64(timeout/time.Millisecond)))
	if err != nil {
		return err
	}
	return endpoint.DecodeTransferAnswer(t, b)
}

func newTransferCmd() *cobra.Command {
	var (
		path          string
		addrs         []string
		to            uint16
		timeout       time.Duration
		ca, cert, key string
	)
	c := &cobra.Command{
		Use:   "transfer-leader --to ID (--config FILE | --addr HOST:PORT,...)",
		Short: "hand leadership to the chosen node: the leader stops taking proposals, catches it up and lets it take over without waiting for failure detection",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == 0 {
				return errors.New("give --to, the id of the node to lead")
			}
			addrs, dial, err := clientTargets(path, addrs, ca, cert, key)
			if err != nil {
				return err
			}
			return transferLeader(cmd.Context(), cmd.OutOrStdout(), addrs, dial, rdma.NodeID(to), timeout)
		},
	}
	c.Flags().Uint16Var(&to, "to", 0, "id of the node that should lead")
	c.Flags().StringVar(&path, "config", "", "a node config file of the cluster")
	c.Flags().StringSliceVar(&addrs, "addr", nil, "client endpoints (host:port, comma-separated)")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long the transfer may take")
	c.Flags().StringVar(&ca, "ca", "", "cluster CA certificate, for TLS with --addr (--config brings its own)")
	c.Flags().StringVar(&cert, "cert", "", "client certificate (mu certs issue --client NAME)")
	c.Flags().StringVar(&key, "key", "", "client key")
	return c
}

// transferLeader finds the leader among addrs (their status), asks it to
// hand over to to, and reports how long it took once to leads. A node
// that no longer leads when asked (leadership moved after the status)
// names the leader, which is asked in turn.
func transferLeader(ctx context.Context, w interface{ Write([]byte) (int, error) }, addrs []string, dial endpoint.DialFunc, to rdma.NodeID, timeout time.Duration) error {
	answers := queryStatus(ctx, addrs, dial, time.Second)
	leader := ""
	var from rdma.NodeID
	byID := map[rdma.NodeID]string{}
	for _, a := range answers {
		if a.err == nil {
			byID[a.st.ID] = a.addr
			if a.st.IsLeader {
				leader, from = a.addr, a.st.ID
			}
		}
	}
	if leader == "" {
		return errNoLeader
	}
	tctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	start := time.Now()
	for hops := 0; ; hops++ {
		if from == to {
			fmt.Fprintf(w, "node %d already leads\n", to)
			return nil
		}
		cl := newNodeClientDial(leader, dial)
		err := cl.transfer(tctx, to, timeout)
		cl.close()
		var nl *consensus.NotLeaderError
		if errors.As(err, &nl) && nl.Known && byID[nl.Leader] != "" && hops < 2 {
			leader, from = byID[nl.Leader], nl.Leader
			continue
		}
		if err != nil {
			return fmt.Errorf("transfer %d -> %d: %w", from, to, err)
		}
		fmt.Fprintf(w, "leadership moved from node %d to node %d in %v\n", from, to, time.Since(start).Round(time.Microsecond))
		return nil
	}
}
