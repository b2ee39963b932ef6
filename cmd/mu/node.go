package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/hwmon"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/verbs"
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
auto asks the peers' client endpoints whether the cluster has committed
anything already.`,
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

// consensusConfig derives the replica's settings from the node config.
func consensusConfig(c Config) consensus.Config {
	cc := consensus.DefaultConfig()
	for _, p := range c.Peers {
		cc.Members = append(cc.Members, p.ID)
	}
	read := int64(c.Timings.PullscoreReadInterval.D())
	cc.PullScore.ReadIntervalNs = read
	// The own counter must move at least twice per peer sample.
	cc.PullScore.BeatIntervalNs = min(cc.PullScore.BeatIntervalNs, read/2)
	cc.PullScore.ScoreMax = c.Detector.ScoreMax
	cc.PullScore.FailBelow = c.Detector.FailBelow
	cc.PullScore.RecoverAbove = c.Detector.RecoverAbove
	cc.ElectionTimeoutNs = int64(c.Timings.PermissionTimeout.D())
	// Layer 2: the leader's probe cadence and its per-follower fail-slow
	// thresholds (consensus keeps the tracker; the hwmon Monitor reads it).
	cc.ProbeIntervalNs = int64(c.Timings.ProbeInterval.D())
	cc.FailSlow = hwmon.DefaultFailSlowConfig()
	cc.FailSlow.WarnRatio = c.Hwmon.ProbeP99WarnRatio
	cc.FailSlow.CriticalRatio = c.Hwmon.ProbeP99CriticalRatio
	probe := cc
	probe.LogSlots = 16
	stride := consensus.NewLayout(probe).SlotStrideBytes
	cc.LogSlots = int(c.LogSizeBytes / stride)
	cc.MaxInflightSlots = min(cc.MaxInflightSlots, cc.LogSlots/2)
	cc.ReadWindowSlots = min(cc.ReadWindowSlots, cc.LogSlots/2)
	return cc
}

func driveMode(pollMode string) consensus.DriveMode {
	if pollMode == PollSpinYield {
		return consensus.DriveSpinYield
	}
	return consensus.DriveBusyPoll
}

// nodeServer is a node's client endpoint.
type nodeServer struct {
	cfg     Config
	self    PeerConfig
	logger  *log.Logger
	started time.Time
	device  string

	mu        sync.Mutex
	nd        *replicaNode
	boot      *rdma.Bootstrapper
	redialing map[rdma.NodeID]bool
	rejoining bool
	monitor   *hwmon.Monitor

	ctx context.Context
}

func (s *nodeServer) node() *replicaNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nd
}

func (s *nodeServer) serve(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() { <-s.ctx.Done(); ln.Close() }()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(conn)
		}()
	}
}

func (s *nodeServer) handle(conn net.Conn) {
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	go func() { <-s.ctx.Done(); conn.Close() }()
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	var buf, out []byte
	for {
		typ, body, err := readFrame(r, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
				s.logger.Printf("client %s: %v", conn.RemoteAddr(), err)
			}
			return
		}
		buf = body[:0]
		var rt byte
		rt, out = s.answer(typ, body, out[:0])
		if err := writeFrame(w, rt, out); err != nil {
			return
		}
	}
}

func errAnswer(out []byte, code byte, msg string) (byte, []byte) {
	return respError, append(append(out, code), msg...)
}

// proposeTimeout bounds one proposal at the node; the client resends.
const proposeTimeout = time.Second

func (s *nodeServer) answer(typ byte, body, out []byte) (byte, []byte) {
	nd := s.node()
	switch typ {
	case reqPropose:
		if nd == nil {
			return errAnswer(out, codeStopped, "replica not running yet (connecting to peers)")
		}
		ctx, cancel := context.WithTimeout(s.ctx, proposeTimeout)
		idx, err := nd.propose(ctx, body)
		cancel()
		var nl *consensus.NotLeaderError
		switch {
		case err == nil:
			return respOK, binary.LittleEndian.AppendUint64(out, uint64(idx))
		case errors.As(err, &nl):
			out = binary.LittleEndian.AppendUint16(out, uint16(nl.Leader))
			known := byte(0)
			if nl.Known {
				known = 1
			}
			out = append(out, known)
			for _, p := range s.cfg.Peers {
				if nl.Known && p.ID == nl.Leader {
					out = append(out, p.ClientAddress...)
				}
			}
			return respNotLeader, out
		case errors.Is(err, consensus.ErrLeadershipLost):
			return errAnswer(out, codeUnknownOutcome, err.Error())
		case errors.Is(err, consensus.ErrFenced):
			return errAnswer(out, codeFenced, err.Error())
		case errors.Is(err, consensus.ErrStopped):
			return errAnswer(out, codeStopped, err.Error())
		case errors.Is(err, consensus.ErrTooLarge):
			return errAnswer(out, codeTooLarge, err.Error())
		case errors.Is(err, consensus.ErrQueueFull):
			return errAnswer(out, codeQueueFull, err.Error())
		case errors.Is(err, context.DeadlineExceeded):
			return errAnswer(out, codeTimeout, "not committed within "+proposeTimeout.String()+"; outcome unknown")
		}
		return errAnswer(out, codeOther, err.Error())
	case reqStatus:
		b, err := json.Marshal(s.status())
		if err != nil {
			return errAnswer(out, codeOther, err.Error())
		}
		return respOK, append(out, b...)
	case reqLog:
		if nd == nil {
			return errAnswer(out, codeStopped, "replica not running yet")
		}
		b, err := json.Marshal(logAnswer{Log: nd.nodeLog(), Terms: nd.wallTerms()})
		if err != nil {
			return errAnswer(out, codeOther, err.Error())
		}
		return respOK, append(out, b...)
	case reqTerms:
		if nd == nil {
			return errAnswer(out, codeStopped, "replica not running yet")
		}
		b, err := json.Marshal(nd.wallTerms())
		if err != nil {
			return errAnswer(out, codeOther, err.Error())
		}
		return respOK, append(out, b...)
	case reqRejoin:
		if len(body) != 2 {
			return errAnswer(out, codeOther, "rejoin: body must be a 2-byte node id")
		}
		s.redial(rdma.NodeID(binary.LittleEndian.Uint16(body)))
		return respOK, out
	}
	return errAnswer(out, codeOther, fmt.Sprintf("unknown request type %d", typ))
}

// redial connects again to a restarted peer with a higher id: of each
// pair the lower id dials, so the restarted node cannot reach us itself.
func (s *nodeServer) redial(peer rdma.NodeID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nd == nil || peer <= s.cfg.ID || s.redialing[peer] {
		return
	}
	i := slices.IndexFunc(s.cfg.Peers, func(p PeerConfig) bool { return p.ID == peer })
	if i < 0 {
		return
	}
	s.redialing[peer] = true
	addr, b := s.cfg.Peers[i].Address, s.boot
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, 10*s.cfg.Timings.HandshakeTimeout.D())
		defer cancel()
		start := time.Now()
		_, err := b.Exchange(ctx, peer, addr)
		if err != nil {
			s.logger.Printf("reconnecting to restarted node %d: %v", peer, err)
		} else {
			s.logger.Printf("reconnected to restarted node %d in %v", peer, time.Since(start).Round(time.Microsecond))
		}
		s.mu.Lock()
		delete(s.redialing, peer)
		s.mu.Unlock()
	}()
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
	st.Leader, st.LeaderKnown = nd.r.Leader()
	st.IsLeader = nd.r.IsLeader()
	st.Fenced = nd.r.Fenced()
	st.Commit = nd.r.CommitIndex()
	st.Applied = nd.r.AppliedIndex()
	st.LeaderTerms = nd.tl.leaderTerms.Load()
	if st.IsLeader {
		st.FailSlow = failSlowFlags(nd.r.FollowerLatency())
	}
	v := nd.det.view.Load()
	if v == nil {
		st.Health = "starting"
		return st
	}
	st.Health, st.Detector = v.Health, v.Stats
	for _, p := range s.cfg.Peers {
		if p.ID == s.cfg.ID {
			continue
		}
		st.Scores[p.ID], st.Alive[p.ID], st.PeerHealth[p.ID] = v.Scores[p.ID], v.Alive[p.ID], v.PeerHealth[p.ID]
		var cs []string
		for pl := range rdma.NumPlanes {
			if c := nd.f.Conn(p.ID, pl); c != nil {
				cs = append(cs, fmt.Sprintf("%s:%s/access=%d", pl, c.State(), c.RemoteAccess()))
			}
		}
		st.Conns[p.ID] = strings.Join(cs, " ")
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
	self := cfg.Self()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &nodeServer{cfg: cfg, self: self, logger: logger, started: time.Now(), ctx: ctx, redialing: map[rdma.NodeID]bool{}}

	// The client endpoint comes up first: status while connecting, and
	// restarted peers' reconnection requests.
	cln, err := net.Listen("tcp", self.ClientAddress)
	if err != nil {
		return fmt.Errorf("peers[id=%d].client_address: %w", cfg.ID, err)
	}
	var srvDone sync.WaitGroup
	srvDone.Add(1)
	go func() { defer srvDone.Done(); srv.serve(cln) }()
	defer func() { cancel(); srvDone.Wait() }() // cancel ends the client endpoint

	t0 := time.Now()
	gid, err := (&rdma.Discovery{}).Discover(cfg.RDMA.Spec())
	if err != nil {
		return fmt.Errorf("discovering the RDMA port: %w", err)
	}
	srv.device = gid.String()
	cc := consensusConfig(cfg)
	var peers []rdma.NodeID
	addrs := map[rdma.NodeID]string{}
	for _, p := range cfg.Peers {
		if p.ID != cfg.ID {
			peers = append(peers, p.ID)
			addrs[p.ID] = p.Address
		}
	}
	vc := verbs.DefaultConfig()
	vc.Self, vc.ClusterID, vc.Peers = cfg.ID, cfg.ClusterID, peers
	vc.Device, vc.Port, vc.GIDIndex = gid.Device, uint8(gid.Port), gid.Index
	vc.RegionBytes = int(cc.RegionBytes())
	vf, err := verbs.New(vc)
	if err != nil {
		return fmt.Errorf("verbs fabric on %s: %w", gid, err)
	}
	defer vf.Close()
	sf := newSwapFabric(vf, peers)
	logger.Printf("rdma %s, region %d bytes, %d log slots (discovery and fabric %v)", gid, vc.RegionBytes, cc.LogSlots, time.Since(t0).Round(time.Microsecond))

	rejoining := rejoin == "yes"
	if rejoin == "auto" {
		rejoining = clusterHasCommitted(ctx, cfg)
	}
	srv.mu.Lock()
	srv.rejoining = rejoining
	srv.mu.Unlock()

	b, err := rdma.NewBootstrapper(rdma.BootstrapConfig{
		ClusterID: cfg.ClusterID, Self: cfg.ID, Peers: peers,
		Timeout: cfg.Timings.HandshakeTimeout.D(), Peering: sf.peering(),
		OnInbound: func(remote net.Addr, peer rdma.NodeID, err error) {
			if err != nil {
				logger.Printf("bootstrap from %v (node %d): %v", remote, peer, err)
			}
		},
	})
	if err != nil {
		return err
	}
	bln, err := net.Listen("tcp", self.Address)
	if err != nil {
		return fmt.Errorf("peers[id=%d].address: %w", cfg.ID, err)
	}
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	var bootDone sync.WaitGroup
	bootDone.Add(1)
	go func() { defer bootDone.Done(); _ = b.Serve(bctx, bln) }()
	defer bootDone.Wait()
	defer bcancel()

	// Connect to every peer; start once a majority is connected, so a
	// node restarting while another is down still joins.
	t1 := time.Now()
	var connected atomic.Bool
	go func() {
		if _, err := b.ConnectAll(bctx, addrs); err != nil && bctx.Err() == nil {
			logger.Printf("bootstrap: %v", err)
		}
		connected.Store(true)
	}()
	if rejoining {
		go askLowerPeersToRedial(bctx, cfg, &connected)
	}
	quorum := len(cfg.Peers)/2 + 1
	allBy := time.Now().Add(2 * cfg.Timings.HandshakeTimeout.D())
	for {
		n := 1
		for _, p := range peers {
			if _, ok := b.Remote(p); ok {
				n++
			}
		}
		if n == len(cfg.Peers) || n >= quorum && time.Now().After(allBy) {
			logger.Printf("connected to %d of %d peers in %v", n-1, len(peers), time.Since(t1).Round(time.Microsecond))
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Microsecond):
		}
	}

	cc.Rejoining = rejoining
	hw, err := newNodeHardware(cfg, &cc)
	if err != nil {
		logger.Printf("hwmon: %v (hardware monitoring off)", err)
	}
	nd, err := newReplicaNode(sf, cc)
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	nd.r.SetResultHandler(func(uint64, consensus.Index, error) {})
	var mon *hwmon.Monitor
	if hw != nil {
		hw.start(ctx, nd.r, logger)
		mon = hw.m
	}
	srv.mu.Lock()
	srv.nd, srv.boot, srv.monitor = nd, b, mon
	srv.mu.Unlock()
	if cfg.PollMode == PollIdleSleep {
		// Four beats per peer sample keep the own counter moving.
		nd.startIdleSleep(cfg.Timings.PullscoreReadInterval.D() / 4)
	} else {
		nd.start(driveMode(cfg.PollMode))
	}
	logger.Printf("replica running (%s driver, rejoining %v); clients at %s", cfg.PollMode, rejoining, self.ClientAddress)
	<-ctx.Done()
	nd.stop()
	logger.Printf("stopped")
	return nil
}

// clusterHasCommitted asks the peers whether the cluster has committed
// anything: then this node restarts without its log.
func clusterHasCommitted(ctx context.Context, cfg Config) bool {
	for _, p := range cfg.Peers {
		if p.ID == cfg.ID {
			continue
		}
		c := newNodeClient(p.ClientAddress)
		qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		st, err := c.status(qctx)
		cancel()
		c.close()
		if err == nil && (st.Commit > 0 || st.Applied > 0) {
			return true
		}
	}
	return false
}

// askLowerPeersToRedial tells the lower-id peers, which dial this node,
// that it restarted, until every connection is up.
func askLowerPeersToRedial(ctx context.Context, cfg Config, connected *atomic.Bool) {
	for !connected.Load() && ctx.Err() == nil {
		for _, p := range cfg.Peers {
			if p.ID >= cfg.ID {
				continue
			}
			c := newNodeClient(p.ClientAddress)
			qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
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
	r atomic.Pointer[consensus.Replica]
}

// newNodeHardware builds the monitor from the node config and sets cc's
// Verifier to the monitor's, so it must run before the replica is built.
// opts come after the node's own (tests replace the collectors).
func newNodeHardware(cfg Config, cc *consensus.Config, opts ...hwmon.MonitorOption) (*nodeHardware, error) {
	hc := hwmon.DefaultConfig()
	cfg.Hwmon.apply(&hc)
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
func (h *nodeHardware) start(ctx context.Context, r *consensus.Replica, logger *log.Logger) {
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
				r.ApplyVerdict(rep.Verdict)
			}
		}
	}()
}
