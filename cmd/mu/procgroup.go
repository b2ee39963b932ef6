package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/node"
	"github.com/rdmaconsensus/mu/rdma"
)

// procGroupOptions describes a group of `mu node` processes on this host.
type procGroupOptions struct {
	n      int
	bin    string   // mu binary; "" means this executable
	device string   // RDMA device; "" means the first
	drive  string   // poll_mode of the nodes
	logDir string   // node logs; "" means the group's temporary directory
	env    []string // extra environment of the nodes
	// readInterval is the pull-score sampling period; 0 keeps the default.
	readInterval time.Duration
	// permissionTimeout bounds each leader-change step; 0 keeps the default.
	permissionTimeout time.Duration
	startTimeout      time.Duration
	// durability is the nodes' durability ("" keeps the default, memory).
	// With async or sync each node journals in dataRoot/node<id>, and the
	// group starts as a new cluster (initial_cluster_state: new).
	durability string
	// dataRoot holds the nodes' data directories; "" means the group's
	// temporary directory.
	dataRoot string
	// voters are the initial voters (empty: all n); the others start as
	// learners.
	voters []rdma.NodeID
	// logBytes is the replicated log's size (0: 16 MiB).
	logBytes uint64
}

// procGroup is a replica group of `mu node` processes, each with a config
// file in a temporary directory, on loopback TCP and one RDMA device.
type procGroup struct {
	opts    procGroupOptions
	dir     string
	ids     []rdma.NodeID
	cfgPath map[rdma.NodeID]string
	cfgs    map[rdma.NodeID]Config
	gid     rdma.GIDEntry

	mu      sync.Mutex
	procs   map[rdma.NodeID]*exec.Cmd
	exited  map[rdma.NodeID]chan struct{}
	clients map[rdma.NodeID]*nodeClient
}

// freePorts asks the kernel for n unused loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// pickGID finds the device's RoCE v2 GID that carries an IPv4 address.
func pickGID(device string) (rdma.GIDEntry, error) { return node.FindRoCEv2(device) }

func startProcGroup(ctx context.Context, opts procGroupOptions) (*procGroup, error) {
	if opts.bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.bin = exe
	}
	if opts.drive == "" {
		opts.drive = PollSpinYield
	}
	if opts.startTimeout == 0 {
		opts.startTimeout = 2 * time.Minute
	}
	gid, err := pickGID(opts.device)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mu-group-")
	if err != nil {
		return nil, err
	}
	if opts.logDir == "" {
		opts.logDir = dir
	}
	g := &procGroup{opts: opts, dir: dir, gid: gid, cfgPath: map[rdma.NodeID]string{}, cfgs: map[rdma.NodeID]Config{},
		procs: map[rdma.NodeID]*exec.Cmd{}, exited: map[rdma.NodeID]chan struct{}{}, clients: map[rdma.NodeID]*nodeClient{}}
	ports, err := freePorts(2 * opts.n)
	if err != nil {
		return nil, err
	}
	var peers strings.Builder
	for i := 1; i <= opts.n; i++ {
		g.ids = append(g.ids, rdma.NodeID(i))
		fmt.Fprintf(&peers, "  - id: %d\n    address: 127.0.0.1:%d\n    client_address: 127.0.0.1:%d\n", i, ports[2*(i-1)], ports[2*(i-1)+1])
	}
	read := ""
	if opts.readInterval > 0 || opts.permissionTimeout > 0 {
		read = "timings:\n"
		if opts.readInterval > 0 {
			read += fmt.Sprintf("  pullscore_read_interval: %s\n", opts.readInterval)
			if opts.readInterval > 10*time.Millisecond {
				read += fmt.Sprintf("  probe_interval: %s\n", opts.readInterval)
			}
		}
		if opts.permissionTimeout > 0 {
			read += fmt.Sprintf("  permission_timeout: %s\n", opts.permissionTimeout)
		}
	}
	// The nodes run as in production, with mutual TLS: a throwaway CA,
	// node certificates and one client certificate for the group's own
	// calls.
	certs := filepath.Join(dir, "certs")
	if err := clustertls.InitDir(certs, "mu-group", 24*time.Hour); err != nil {
		return nil, err
	}
	for _, id := range g.ids {
		if _, _, err := clustertls.IssueInDir(certs, clustertls.NodeIdentity(id), 24*time.Hour); err != nil {
			return nil, err
		}
	}
	cc, ck, err := clustertls.IssueInDir(certs, clustertls.ClientIdentity("procgroup"), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	client, err := clustertls.LoadFiles(filepath.Join(certs, clustertls.CAFile), cc, ck)
	if err != nil {
		return nil, err
	}
	for _, id := range g.ids {
		cert, key := clustertls.Files(certs, clustertls.NodeIdentity(id))
		security := fmt.Sprintf("security:\n  ca: %s\n  cert: %s\n  key: %s\n", filepath.Join(certs, clustertls.CAFile), cert, key)
		text := fmt.Sprintf("id: %d\ncluster_id: 0x6d75\npeers:\n%srdma:\n  device: %s\n  port: %d\n  gid_index: %d\n%s%spoll_mode: %s\nlog_size_bytes: %d\n",
			id, peers.String(), gid.Device, gid.Port, gid.Index, read, security, opts.drive, cmp.Or(opts.logBytes, 16<<20))
		text += g.durabilityConfig(id)
		if len(opts.voters) > 0 {
			text += fmt.Sprintf("voters: %v\n", strings.ReplaceAll(fmt.Sprint(opts.voters), " ", ", "))
		}
		cfg, err := ParseConfig([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("generated config for node %d: %w", id, err)
		}
		path := filepath.Join(dir, fmt.Sprintf("node%d.yaml", id))
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, err
		}
		g.cfgPath[id], g.cfgs[id] = path, cfg
		g.clients[id] = newNodeClientDial(cfg.Self().ClientAddress, tlsDial(client, id))
	}
	for _, id := range g.ids {
		if err := g.start(id, false); err != nil {
			g.close()
			return nil, err
		}
	}
	if err := g.waitLeader(ctx, opts.startTimeout); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// start launches node id; rejoin says it restarts without its log.
func (g *procGroup) start(id rdma.NodeID, rejoin bool) error {
	rj := "no"
	if rejoin {
		rj = "yes"
	}
	return g.startWith(id, rj)
}

// startWith launches node id with --rejoin rejoin (auto, yes or no).
func (g *procGroup) startWith(id rdma.NodeID, rejoin string) error {
	logf, err := os.OpenFile(filepath.Join(g.opts.logDir, fmt.Sprintf("node%d.log", id)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(g.opts.bin, "node", "--config", g.cfgPath[id], "--rejoin", rejoin)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), g.opts.env...)
	// A node must not outlive the group's owner.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting node %d: %w", id, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	g.mu.Lock()
	g.procs[id], g.exited[id] = cmd, done
	g.mu.Unlock()
	return nil
}

// waitLeader waits until some node leads and every running node answers.
func (g *procGroup) waitLeader(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	defer func() {
		if last != "" {
			for _, id := range g.ids {
				if st, err := g.status(ctx, id); err == nil {
					fmt.Fprintf(os.Stderr, "node %d: %+v\n", id, st)
				}
			}
		}
	}()
	for time.Now().Before(deadline) {
		for _, id := range g.ids {
			qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			st, err := g.clients[id].status(qctx)
			cancel()
			if err != nil {
				last = fmt.Sprintf("node %d: %v", id, err)
				continue
			}
			if st.IsLeader {
				last = ""
				return nil
			}
			last = fmt.Sprintf("node %d: no leader yet (health %s, scores %v, alive %v, leader %d known %v)", id, st.Health, st.Scores, st.Alive, st.Leader, st.LeaderKnown)
		}
		if err := g.anyExited(); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no leader within %v (%s); node logs in %s", timeout, last, g.opts.logDir)
}

func (g *procGroup) anyExited() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, done := range g.exited {
		select {
		case <-done:
			if g.procs[id] != nil {
				return fmt.Errorf("node %d exited (%v); its log: %s", id, g.procs[id].ProcessState, filepath.Join(g.opts.logDir, fmt.Sprintf("node%d.log", id)))
			}
		default:
		}
	}
	return nil
}

func (g *procGroup) members() []rdma.NodeID { return g.ids }

func (g *procGroup) describe() string {
	return fmt.Sprintf("%d `mu node` processes on %s (verbs fabric, GID %s), %s drivers", len(g.ids), g.gid.Device, g.gid, g.opts.drive)
}

func (g *procGroup) propose(ctx context.Context, id rdma.NodeID, cmd []byte) (consensus.Index, error) {
	return g.clients[id].propose(ctx, cmd)
}

func (g *procGroup) signal(id rdma.NodeID, sig syscall.Signal) error {
	g.mu.Lock()
	p := g.procs[id]
	g.mu.Unlock()
	if p == nil || p.Process == nil {
		return fmt.Errorf("node %d is not running", id)
	}
	return p.Process.Signal(sig)
}

// kill SIGKILLs node id and waits for it to be gone.
func (g *procGroup) kill(id rdma.NodeID) error {
	if err := g.signal(id, syscall.SIGKILL); err != nil {
		return err
	}
	g.mu.Lock()
	done := g.exited[id]
	g.procs[id] = nil
	g.mu.Unlock()
	<-done
	g.clients[id].close()
	return nil
}

func (g *procGroup) freeze(id rdma.NodeID) error { return g.signal(id, syscall.SIGSTOP) }
func (g *procGroup) thaw(id rdma.NodeID) error   { return g.signal(id, syscall.SIGCONT) }

// restart starts a killed node again, without its log.
func (g *procGroup) restart(id rdma.NodeID) error { return g.start(id, true) }

func (g *procGroup) answer(ctx context.Context, id rdma.NodeID) (logAnswer, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return g.clients[id].log(qctx)
}

func (g *procGroup) logs(ctx context.Context, ids []rdma.NodeID) (map[rdma.NodeID]nodeLog, error) {
	out := map[rdma.NodeID]nodeLog{}
	var errs []error
	for _, id := range ids {
		a, err := g.answer(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", id, err))
			continue
		}
		out[id] = a.Log
	}
	return out, errors.Join(errs...)
}

func (g *procGroup) terms(ctx context.Context, id rdma.NodeID) ([]failoverSteps, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return g.clients[id].terms(qctx)
}

func (g *procGroup) status(ctx context.Context, id rdma.NodeID) (nodeStatus, error) {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return g.clients[id].status(qctx)
}

// close stops every node (SIGCONT first, in case one is frozen) and
// removes the configs; logs stay when they were asked for elsewhere.
func (g *procGroup) close() {
	g.mu.Lock()
	procs := map[rdma.NodeID]*exec.Cmd{}
	for id, p := range g.procs {
		if p != nil {
			procs[id] = p
		}
	}
	g.mu.Unlock()
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGCONT)
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for id := range procs {
		select {
		case <-g.exited[id]:
		case <-time.After(5 * time.Second):
			_ = procs[id].Process.Kill()
			<-g.exited[id]
		}
	}
	for _, c := range g.clients {
		c.close()
	}
	if g.opts.logDir == g.dir {
		// Keep the logs of a failed run for inspection only when asked.
		if os.Getenv("MU_KEEP_LOGS") == "" {
			os.RemoveAll(g.dir)
		}
	} else {
		os.RemoveAll(g.dir)
	}
}

// leader asks the nodes who leads.
func (g *procGroup) leader(ctx context.Context) (rdma.NodeID, bool) {
	for _, id := range g.ids {
		st, err := g.status(ctx, id)
		if err == nil && st.IsLeader {
			return id, true
		}
	}
	return 0, false
}
