package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/node"
	"github.com/rdmaconsensus/mu/rdma"
)

// serve runs one replica of the book as a process of its own, answering
// orders on a TCP client endpoint with their fills; a follower answers
// with the leader's id and client address.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var (
		id      = fs.Int("id", 0, "this replica's id")
		peers   = fs.String("peers", "", "id=host:port of every replica's bootstrap listener, comma-separated")
		clients = fs.String("clients", "", "id=host:port of every replica's client endpoint, comma-separated")
		device  = fs.String("device", "", "RDMA device (default: the first)")
		poll    = fs.String("poll", "idle-sleep", "spin, spin-yield or idle-sleep")
		read    = fs.Duration("read-interval", 0, "failure detector read period (0: the default)")
		elect   = fs.Duration("election-timeout", 0, "bound on each leader-change step (0: the default)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	bootAddrs, err := parseAddrs(*peers, "-peers")
	if err != nil {
		return err
	}
	clientAddrs, err := parseAddrs(*clients, "-clients")
	if err != nil {
		return err
	}
	gid, err := node.FindRoCEv2(*device)
	if err != nil {
		return err
	}
	cfg := node.DefaultConfig()
	cfg.ID, cfg.ClusterID, cfg.Device, cfg.StateMachine = rdma.NodeID(*id), 0x6d75, node.Spec(gid), newBook()
	cfg.Insecure = true // a test on loopback; a deployment sets Credentials
	for _, p := range slices.Sorted(maps.Keys(bootAddrs)) {
		cfg.Peers = append(cfg.Peers, node.Peer{ID: p, Address: bootAddrs[p]})
	}
	switch *poll {
	case "spin":
		cfg.Poll = node.PollSpin
	case "spin-yield":
		cfg.Poll = node.PollSpinYield
	case "idle-sleep":
		cfg.Poll = node.PollIdleSleep
	default:
		return fmt.Errorf("-poll: %q is not spin, spin-yield or idle-sleep", *poll)
	}
	if *read > 0 {
		cfg.Consensus.PullScore.ReadIntervalNs = int64(*read)
		cfg.Consensus.PullScore.BeatIntervalNs = min(cfg.Consensus.PullScore.BeatIntervalNs, int64(*read)/2)
		cfg.IdleSleepMax = *read / 4
	}
	if *elect > 0 {
		cfg.Consensus.ElectionTimeoutNs = int64(*elect)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", clientAddrs[cfg.ID])
	if err != nil {
		return err
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	es, err := endpoint.NewServer(endpoint.DefaultLimits(), func(ctx context.Context, typ byte, body, out []byte) (byte, []byte) {
		if typ != endpoint.ReqPropose {
			return endpoint.ErrorAnswer(out, endpoint.CodeRefused, "orders only")
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, fills, err := n.Propose(pctx, body, nil)
		var nl *consensus.NotLeaderError
		switch {
		case err == nil:
			return endpoint.RespOK, append(out, fills...)
		case errors.As(err, &nl):
			return endpoint.NotLeaderAnswer(out, nl.Leader, nl.Known, clientAddrs[nl.Leader])
		}
		return endpoint.ErrorAnswer(out, endpoint.CodeUnknownOutcome, err.Error())
	}, log.Printf)
	if err != nil {
		return err
	}
	return es.Serve(ctx, ln)
}

func parseAddrs(s, flagName string) (map[rdma.NodeID]string, error) {
	m := map[rdma.NodeID]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		id, err := strconv.Atoi(k)
		if !ok || err != nil || id < 1 || v == "" {
			return nil, fmt.Errorf("%s: %q is not id=host:port", flagName, kv)
		}
		m[rdma.NodeID(id)] = v
	}
	return m, nil
}
