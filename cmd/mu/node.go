package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/config"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/hwmon"
	"github.com/rdmaconsensus/mu/metrics"
	"github.com/rdmaconsensus/mu/node"
	"github.com/rdmaconsensus/mu/quorum"
	"github.com/rdmaconsensus/mu/rdma"
)

func newNodeCmd() *cobra.Command {
	var (
		path   string
		rejoin string
	)
	c := &cobra.Command{
		Use:   "node --config FILE",
		Short: "run one replica: RDMA discovery, verbs fabric, TCP bootstrap, consensus, client endpoint",
		Long: `node runs one replica of the replicated order book. It finds its RDMA port
(rdma.interface or rdma.device), opens the verbs fabric, connects queue pairs
with every peer over the TCP bootstrap (peers[*].address), runs the consensus
replica on a polling driver and serves clients on its client_address:
length-prefixed frames to propose commands, read the status and the applied
log. A follower answers a proposal with the leader's id and address.

--rejoin says whether this node restarts without its log (it then neither
leads nor counts in a recovery quorum until a leader has caught it up):
auto rejoins unless the config says initial_cluster_state: new (a cluster's
first start) and no peer's client endpoint reports anything committed. With
durability async or sync the journal in data_dir decides instead, unless
--rejoin yes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return errors.New("--config is required")
			}
			cfg, err := LoadConfig(path)
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "mu: warning:", w)
			}
			switch rejoin {
			case "auto", "yes", "no":
			default:
				return fmt.Errorf("--rejoin: %q is not auto, yes or no", rejoin)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runNode(ctx, cfg, rejoin, log.New(cmd.ErrOrStderr(), fmt.Sprintf("mu node %d: ", cfg.ID), log.Lmicroseconds))
		},
	}
	c.Flags().StringVar(&path, "config", "", "node config file (see cmd/mu/testdata/node1.yaml)")
	c.Flags().StringVar(&rejoin, "rejoin", "auto", "auto, yes or no: whether this node restarts without its log")
	return c
}

// checkPollers refuses, before anything starts, a busy-polling driver for
// each of n replicas in this process that would leave no Go processor
// for the rest (proposals would stall without an error).
func checkPollers(pollMode string, n int) error {
	if pollMode != PollSpin {
		return nil
	}
	if err := consensus.CheckBusyPoll(n); err != nil {
		return fmt.Errorf("poll_mode %s: %w", pollMode, err)
	}
	return nil
}

// nodeServer is a node's client endpoint.
type nodeServer struct {
	cfg     Config
	self    PeerConfig
	logger  *log.Logger
	started time.Time
	device  string

	// creds are the node's TLS credentials; nil runs both listeners in
	// plain TCP (security.insecure).
	creds *clustertls.Credentials

	mu        sync.Mutex
	nd        *replicaNode
	rejoining bool
	monitor   *hwmon.Monitor
	metrics   atomic.Pointer[metrics.Collector] // nil: no metrics_address
	commits   commitWindow                      // recent commit latencies, for status

	ctx context.Context
}

func (s *nodeServer) node() *replicaNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nd
}

// limits are the client endpoint's bounds from the config.
func (s *nodeServer) limits() endpoint.Limits {
	c := s.cfg.Client
	return endpoint.Limits{
		MaxConns:        c.MaxConnections,
		IdleTimeout:     c.IdleTimeout.D(),
		ReadTimeout:     c.ReadTimeout.D(),
		WriteTimeout:    c.WriteTimeout.D(),
		MaxRequestBytes: s.cfg.MaxRequestBytes(),
	}
}

// serve runs the client endpoint on ln until s.ctx ends.
func (s *nodeServer) serve(ln net.Listener) error {
	es, err := endpoint.NewServer(s.limits(), s.answer, s.logger.Printf)
	if err != nil {
		ln.Close()
		return err
	}
	if s.creds != nil {
		// Nodes and clients of the cluster alike; what each may ask is
		// decided per request.
		es.UseTLS(s.creds.ServerConfig(nil))
	}
	return es.Serve(s.ctx, ln)
}

// proposeTimeout bounds one proposal at the node; the client resends.
const proposeTimeout = time.Second

func (s *nodeServer) answer(ctx context.Context, typ byte, body, out []byte) (byte, []byte) {
	nd := s.node()
	errAnswer := endpoint.ErrorAnswer
	switch typ {
	case endpoint.ReqPropose:
		if nd == nil {
			return errAnswer(out, endpoint.CodeStopped, "replica not running yet (connecting to peers)")
		}
		pctx, cancel := context.WithTimeout(ctx, proposeTimeout)
		start := time.Now()
		idx, err := nd.propose(pctx, body)
		cancel()
		if err == nil {
			s.observeCommit(time.Since(start))
		}
		var nl *consensus.NotLeaderError
		switch {
		case err == nil:
			return endpoint.RespOK, binary.LittleEndian.AppendUint64(out, uint64(idx))
		case errors.As(err, &nl):
			addr := ""
			if p, ok := s.cfg.Peer(nl.Leader); ok && nl.Known {
				addr = p.ClientAddress
			}
			return endpoint.NotLeaderAnswer(out, nl.Leader, nl.Known, addr)
		case errors.Is(err, consensus.ErrLeadershipLost):
			return errAnswer(out, endpoint.CodeUnknownOutcome, err.Error())
		case errors.Is(err, consensus.ErrFenced):
			return errAnswer(out, endpoint.CodeFenced, err.Error())
		case errors.Is(err, consensus.ErrStopped), errors.Is(err, consensus.ErrClosed):
			return errAnswer(out, endpoint.CodeStopped, err.Error())
		case errors.Is(err, consensus.ErrTooLarge):
			return errAnswer(out, endpoint.CodeTooLarge, err.Error())
		case errors.Is(err, consensus.ErrQueueFull):
			return errAnswer(out, endpoint.CodeQueueFull, err.Error())
		case errors.Is(err, context.DeadlineExceeded):
			return errAnswer(out, endpoint.CodeTimeout, "not committed within "+proposeTimeout.String()+"; outcome unknown")
		}
		return errAnswer(out, endpoint.CodeOther, err.Error())
	case endpoint.ReqStatus:
		b, err := json.Marshal(s.status())
		if err != nil {
			return errAnswer(out, endpoint.CodeOther, err.Error())
		}
		return endpoint.RespOK, append(out, b...)
	case endpoint.ReqLog:
		if nd == nil {
			return errAnswer(out, endpoint.CodeStopped, "replica not running yet")
		}
		b, err := json.Marshal(logAnswer{Log: nd.nodeLog(), Terms: nd.wallTerms()})
		if err != nil {
			return errAnswer(out, endpoint.CodeOther, err.Error())
		}
		return endpoint.RespOK, append(out, b...)
	case endpoint.ReqTerms:
		if nd == nil {
			return errAnswer(out, endpoint.CodeStopped, "replica not running yet")
		}
		b, err := json.Marshal(nd.wallTerms())
		if err != nil {
			return errAnswer(out, endpoint.CodeOther, err.Error())
		}
		return endpoint.RespOK, append(out, b...)
	case endpoint.ReqTransfer:
		return s.answerTransfer(ctx, body, out)
	case endpoint.ReqMember:
		return s.answerMember(ctx, body, out)
	case endpoint.ReqRejoin:
		id, err := endpoint.DecodeRejoin(body)
		if err != nil {
			return errAnswer(out, endpoint.CodeOther, err.Error())
		}
		// A rejoin rebuilds queue pairs: only the restarted node itself
		// may ask for it.
		if s.creds != nil {
			cs, _ := endpoint.PeerTLS(ctx)
			if who, err := clustertls.PeerNode(cs); err != nil || who != id {
				return errAnswer(out, endpoint.CodeRefused, "rejoin: only the restarting node may ask")
			}
		}
		s.redial(id)
		return endpoint.RespOK, out
	}
	return errAnswer(out, endpoint.CodeOther, fmt.Sprintf("unknown request type %d", typ))
}

// redial connects again to a restarted peer with a higher id: of each
// pair the lower id dials, so the restarted node cannot reach us itself.
func (s *nodeServer) redial(peer rdma.NodeID) {
	if nd := s.node(); nd != nil {
		if err := nd.n.Reconnect(peer); err != nil {
			s.logger.Printf("reconnecting to restarted node %d: %v", peer, err)
		}
	}
}

func (s *nodeServer) status() nodeStatus {
	st := nodeStatus{ID: s.cfg.ID, Device: s.device, UptimeNs: int64(time.Since(s.started)), Pid: os.Getpid(),
		Scores: map[rdma.NodeID]int{}, Conns: map[rdma.NodeID]string{}, Alive: map[rdma.NodeID]bool{}, PeerHealth: map[rdma.NodeID]string{}, Hardware: "unknown"}
	s.mu.Lock()
	st.Rejoining = s.rejoining
	mon := s.monitor
	s.mu.Unlock()
	if mon != nil {
		if rep, ok := mon.Latest(); ok {
			st.Hardware = rep.Verdict.String()
			for _, r := range rep.Reasons {
				st.HardwareWhy = append(st.HardwareWhy, r.String())
			}
		}
	}
	nd := s.node()
	if nd == nil {
		st.Health = "connecting"
		return st
	}
	ns := nd.n.Status()
	st.Device = ns.Device
	st.Leader, st.LeaderKnown, st.IsLeader, st.Fenced = ns.Leader, ns.LeaderKnown, ns.IsLeader, ns.Fenced
	st.Commit, st.Applied, st.LeaderTerms = ns.Commit, ns.Applied, ns.LeaderTerms
	st.Voters = ns.Voters
	st.FailSlow = failSlowFlags(ns.FailSlow)
	p50, p99, n := s.commits.quantiles(time.Now())
	st.CommitP50Ns, st.CommitP99Ns, st.CommitSamples = int64(p50), int64(p99), n
	st.Health, st.Detector = ns.Health, ns.Detector
	for _, p := range ns.Peers {
		st.Scores[p.ID], st.Alive[p.ID], st.PeerHealth[p.ID], st.Conns[p.ID] = p.Score, p.Alive, p.Health, p.Conns
	}
	return st
}

// failSlowFlags describes the fail-slow followers among fl (nil if none).
func failSlowFlags(fl []consensus.FollowerLatency) map[rdma.NodeID]string {
	var m map[rdma.NodeID]string
	for _, f := range fl {
		if !f.FailSlow {
			continue
		}
		if m == nil {
			m = map[rdma.NodeID]string{}
		}
		m[f.Peer] = fmt.Sprintf("%s: write p99 %v, %.1fx its baseline %v", f.Level,
			time.Duration(f.P99Ns), f.SlowdownRatio, time.Duration(f.BaselineP99Ns))
	}
	return m
}

// runNode runs one replica until ctx ends.
func runNode(ctx context.Context, cfg Config, rejoin string, logger *log.Logger) error {
	if err := checkPollers(cfg.PollMode, 1); err != nil {
		return err
	}
	self := cfg.Self()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	creds, err := cfg.Credentials()
	if err != nil {
		return err
	}
	if creds == nil {
		for _, line := range insecureBanner() {
			logger.Print(line)
		}
	} else {
		logger.Printf("mutual TLS 1.3 on both listeners as %v (certificate valid until %s)", creds.Self, creds.NotAfter.Format(time.RFC3339))
	}
	srv := &nodeServer{cfg: cfg, self: self, logger: logger, started: time.Now(), ctx: ctx, creds: creds}

	// The client endpoint comes up first: status while connecting, and
	// restarted peers' reconnection requests.
	cln, err := net.Listen("tcp", self.ClientAddress)
	if err != nil {
		return fmt.Errorf("peers[id=%d].client_address: %w", cfg.ID, err)
	}
	var srvDone sync.WaitGroup
	srvDone.Add(1)
	go func() {
		defer srvDone.Done()
		if err := srv.serve(cln); err != nil {
			logger.Printf("client endpoint: %v", err)
		}
	}()
	defer func() { cancel(); srvDone.Wait() }() // cancel ends the client endpoint

	cc := consensusConfig(cfg)
	// With durability async or sync the journal in data_dir decides
	// whether this replica may vote (consensus.Config.NewCluster); only an
	// explicit --rejoin yes overrides it.
	st, err := cfg.DurableStorage()
	if err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if st != nil {
		cc.Storage = st
		defer st.Close()
	}
	if err := checkMemlock(cc.RegionBytes()); err != nil {
		return err
	}
	// auto: a node with an empty log starts as a voter only at the first
	// start of a new cluster (initial_cluster_state: new) and while no
	// peer reports anything committed. Otherwise it lost what it accepted
	// and rejoins, however slow its peers are to answer: a silent peer
	// must not turn a restart into a new member that votes with nothing.
	rejoining := rejoin == "yes"
	if rejoin == "auto" {
		rejoining = autoRejoin(cfg, func() bool { return clusterHasCommitted(ctx, cfg, creds, logger.Printf) })
	}
	srv.mu.Lock()
	srv.rejoining = rejoining
	srv.mu.Unlock()
	if rejoining {
		// The lower-id peers dial this node: tell them it restarted until
		// every connection is up.
		go askLowerPeersToRedial(ctx, cfg, creds, func() bool {
			nd := srv.node()
			if nd == nil {
				return false
			}
			for _, p := range nd.n.Status().Peers {
				if !p.Connected {
					return false
				}
			}
			return true
		})
	}

	hw, err := newNodeHardware(cfg, &cc)
	if err != nil {
		logger.Printf("hwmon: %v (hardware monitoring off)", err)
	}
	nc := node.DefaultConfig()
	nc.ID, nc.ClusterID, nc.Device, nc.Consensus = cfg.ID, cfg.ClusterID, cfg.RDMA.Spec(), cc
	for _, p := range cfg.Peers {
		nc.Peers = append(nc.Peers, node.Peer{ID: p.ID, Address: p.Address})
	}
	nc.Poll = pollMode(cfg.PollMode)
	// Four beats per peer sample keep the own counter moving.
	nc.IdleSleepMax = cfg.Timings.PullscoreReadInterval.D() / 4
	nc.HandshakeTimeout = cfg.Timings.HandshakeTimeout.D()
	nc.Credentials, nc.Insecure, nc.Rejoining = creds, creds == nil, rejoining
	if st != nil && rejoin != "yes" {
		nc.Rejoining = false
	}
	nc.Logger = slog.New(slog.NewTextHandler(logger.Writer(), nil))
	nd, err := startReplica(ctx, nc)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while connecting
		}
		return err
	}
	defer nd.stop()
	nd.sm.log.SetMaxBytes(cfg.AppliedLogMaxBytes)
	var mon *hwmon.Monitor
	if hw != nil {
		hw.start(ctx, nd.n, logger)
		mon = hw.m
	}
	srv.mu.Lock()
	srv.nd, srv.monitor = nd, mon
	srv.mu.Unlock()
	mc, err := serveNodeMetrics(ctx, cfg, creds, nd.n, mon, logger)
	if err != nil {
		return err
	}
	srv.metrics.Store(mc)
	voting := fmt.Sprintf("rejoining %v", nc.Rejoining)
	if st != nil && rejoin != "yes" {
		voting = "the journal in data_dir decides whether it votes"
	}
	logger.Printf("replica running (%s driver, %s); clients at %s", cfg.PollMode, voting, self.ClientAddress)
	<-ctx.Done()
	nd.stop()
	logger.Printf("stopped")
	return nil
}

// autoRejoin is --rejoin auto: rejoin unless this is a new cluster's first
// start and no peer reports anything committed (asked only then).
func autoRejoin(cfg Config, peersCommitted func() bool) bool {
	return cfg.InitialClusterState != config.ClusterStateNew || peersCommitted()
}

// clusterHasCommitted asks the peers whether the cluster has committed
// anything: then this node restarts without its log. Silence is not an
// answer: it asks again until a majority (this node included) has
// answered, so a restart whose config still says new, while its peers are
// slow or cut off, never turns into an empty voter. At a new cluster's
// first start the peers' client endpoints answer (nothing committed)
// before their replicas start, so this does not wait on them.
func clusterHasCommitted(ctx context.Context, cfg Config, creds *clustertls.Credentials, logf func(string, ...any)) bool {
	need := quorum.Majority(len(cfg.Peers))
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		answered := 1 // this node: it has nothing
		for _, p := range cfg.Peers {
			if p.ID == cfg.ID {
				continue
			}
			c := newNodeClientDial(p.ClientAddress, tlsDial(creds, p.ID))
			qctx, cancel := context.WithTimeout(ctx, peerCallTimeout(cfg))
			st, err := c.status(qctx)
			cancel()
			c.close()
			if err != nil {
				continue
			}
			if st.Commit > 0 || st.Applied > 0 {
				return true
			}
			answered++
		}
		if answered >= need {
			return false
		}
		logf("initial_cluster_state new: %d of %d members answered, waiting for %d before starting as a new member", answered, len(cfg.Peers), need)
		select {
		case <-ctx.Done():
			return true // stopping: rejoining is the side that cannot lose anything
		case <-time.After(wait):
		}
	}
}

// askLowerPeersToRedial tells the lower-id peers, which dial this node,
// that it restarted, until every connection is up.
func askLowerPeersToRedial(ctx context.Context, cfg Config, creds *clustertls.Credentials, connected func() bool) {
	for !connected() && ctx.Err() == nil {
		for _, p := range cfg.Peers {
			if p.ID >= cfg.ID {
				continue
			}
			c := newNodeClientDial(p.ClientAddress, tlsDial(creds, p.ID))
			qctx, cancel := context.WithTimeout(ctx, peerCallTimeout(cfg))
			_ = c.rejoin(qctx, cfg.ID)
			cancel()
			c.close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nodeHardware is the node's hardware monitor wired to its replica: the
// arbiter's probe-latency and fail-slow rows read the replica's layer-2
// summary, its log-checksum row the replica's verifier, and every verdict
// change goes to the replica (Failed fences, Degraded demotes, Healthy
// clears).
type nodeHardware struct {
	m *hwmon.Monitor
	r atomic.Pointer[node.Node]
}

// newNodeHardware builds the monitor from the node config and sets cc's
// Verifier to the monitor's, so it must run before the replica is built.
// opts come after the node's own (tests replace the collectors).
func newNodeHardware(cfg Config, cc *consensus.Config, opts ...hwmon.MonitorOption) (*nodeHardware, error) {
	hc := hwmon.DefaultConfig()
	cfg.ApplyHwmon(&hc)
	h := &nodeHardware{}
	m, err := hwmon.NewMonitor(hc, append([]hwmon.MonitorOption{hwmon.WithProbeSummary(h.probeSummary)}, opts...)...)
	if err != nil {
		return nil, err
	}
	h.m = m
	cc.Verifier = m.Verifier()
	return h, nil
}

// probeSummary is the replica's layer-2 view (empty until it runs).
func (h *nodeHardware) probeSummary() hwmon.ProbeSummary {
	if r := h.r.Load(); r != nil {
		return r.ProbeSummary()
	}
	return hwmon.ProbeSummary{}
}

// start runs the monitor for r until ctx ends and hands r every verdict
// change.
func (h *nodeHardware) start(ctx context.Context, r *node.Node, logger *log.Logger) {
	h.r.Store(r)
	go func() { _ = h.m.Run(ctx) }()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case rep := <-h.m.Changes():
				logger.Printf("hardware verdict: %s", rep.Verdict)
				if rep.Verdict == hwmon.Failed && !r.Fenced() {
					logger.Printf("fencing: %v", rep.Reasons)
				}
				rep.Verdict.Apply(r)
			}
		}
	}()
}

// insecureBanner is what a node without credentials logs at every start.
func insecureBanner() []string {
	bar := strings.Repeat("!", 78)
	return []string{bar, "!!! " + config.InsecureWarning, bar}
}

// peerCallTimeout bounds one call to a peer's client endpoint: a TLS
// handshake and a request, so one bootstrap handshake's time.
func peerCallTimeout(cfg Config) time.Duration { return cfg.Timings.HandshakeTimeout.D() }
