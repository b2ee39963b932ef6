package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/internal/chart"
	"github.com/rdmaconsensus/mu/rdma"
)

// requireTmux skips without tmux, and fails instead when MU_REQUIRE_TMUX=1
// (make test installs it) says it must be there.
func requireTmux(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tmux")
	if err == nil {
		return p
	}
	if os.Getenv("MU_REQUIRE_TMUX") == "1" {
		t.Fatal("MU_REQUIRE_TMUX=1 but tmux is not installed (scripts/deps.sh installs it)")
	}
	t.Skip("tmux is not installed; set MU_REQUIRE_TMUX=1 to make this a failure")
	return ""
}

// tmuxPane is a detached tmux server of its own (its socket in a
// temporary directory, so no other tmux is touched) running one command in
// a pane of a fixed size.
type tmuxPane struct {
	bin, sock string
}

func startTmuxPane(t *testing.T, bin string, width, height int, env []string, argv ...string) *tmuxPane {
	t.Helper()
	dir, err := os.MkdirTemp("", "mu-tmux") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	p := &tmuxPane{bin: bin, sock: filepath.Join(dir, "sock")}
	// The pane stays after the command exits, with its status, so a
	// command that fails shows why on the screen read.
	shell := strings.Join(quoteAll(argv), " ") + `; echo "[exited with status $?]"; sleep 3600`
	args := []string{"-S", p.sock, "-f", "/dev/null", "new-session", "-d", "-x", fmt.Sprint(width), "-y", fmt.Sprint(height)}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, shell)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command(bin, "-S", p.sock, "kill-server").Run()
		os.RemoveAll(dir)
	})
	return p
}

func quoteAll(argv []string) []string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return q
}

// screen is the pane's text as a terminal shows it now.
func (p *tmuxPane) screen() (string, error) {
	out, err := exec.Command(p.bin, "-S", p.sock, "capture-pane", "-p").Output()
	return strings.TrimRight(string(out), "\n"), err
}

// watchScreen is what a frame of `mu status --watch` says, read off the
// screen.
type watchScreen struct {
	text    string
	stamp   string              // the frame's time line
	roles   map[string]string   // address -> role column
	leaders map[string]string   // address -> leader column
	ids     map[string]string   // address -> node id
	summary string              // the group line
	latency map[string][]string // address -> commit p50/p99 column
}

var (
	rowRe   = regexp.MustCompile(`^(\d+|\?)\s+(127\.0\.0\.1:\d+)\s+(\S+)(?:\s+(\S+)\s+\d+\s+\d+\s+(\S+))?`)
	stampRe = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3}  every `)
)

func parseWatchScreen(text string) watchScreen {
	s := watchScreen{text: text, roles: map[string]string{}, leaders: map[string]string{}, ids: map[string]string{}, latency: map[string][]string{}}
	for _, line := range strings.Split(text, "\n") {
		switch {
		case stampRe.MatchString(line):
			s.stamp = line
		case strings.HasPrefix(line, "group: "):
			s.summary = line
		}
		if m := rowRe.FindStringSubmatch(line); m != nil {
			s.ids[m[2]], s.roles[m[2]], s.leaders[m[2]] = m[1], m[3], m[4]
			if m[5] != "" && m[5] != "-" {
				s.latency[m[2]] = strings.Split(m[5], "/")
			}
		}
	}
	return s
}

var proposalsRe = regexp.MustCompile(`, (\d+) proposals in `)

// proposals is how many commits the group line's latency is over (0: none).
func (s watchScreen) proposals() int {
	n := 0
	if m := proposalsRe.FindStringSubmatch(s.summary); m != nil {
		fmt.Sscan(m[1], &n)
	}
	return n
}

// since is how long after t (same day, local time) the frame was drawn;
// negative if before, or if the screen has no frame yet.
func (s watchScreen) since(t time.Time) time.Duration {
	stamp, err := time.ParseInLocation(watchStamp, strings.Fields(s.stamp + " x")[0], time.Local)
	if err != nil {
		return -time.Hour
	}
	y, m, d := t.Date()
	at := time.Date(y, m, d, stamp.Hour(), stamp.Minute(), stamp.Second(), stamp.Nanosecond(), time.Local)
	diff := at.Sub(t)
	// A frame and t on either side of midnight.
	switch {
	case diff > 12*time.Hour:
		diff -= 24 * time.Hour
	case diff < -12*time.Hour:
		diff += 24 * time.Hour
	}
	return diff
}

// leaderAddr is the one address whose row says leader, if exactly one does
// and every other answering row names that node as leader.
func (s watchScreen) leaderAddr() (string, bool) {
	var addr string
	for a, r := range s.roles {
		if r == "leader" {
			if addr != "" {
				return "", false
			}
			addr = a
		}
	}
	if addr == "" {
		return "", false
	}
	for a, r := range s.roles {
		if r != "unreachable" && s.leaders[a] != s.ids[addr] {
			return "", false
		}
	}
	return addr, true
}

// `mu status --watch`, run in a terminal (tmux), shows a leader change
// live: three replicas over the in-process fabric serve their client
// endpoints, a client keeps proposing, the leader is killed, and the
// screen, read with tmux capture-pane, must go from the old leader to the
// new one, with the commit latency at each. With MU_STATUS_WATCH_RECORD=FILE
// the frames before, during and after are written to FILE as markdown
// (docs/status-watch.md).
func TestStatusWatchShowsLeaderChangeInTmux(t *testing.T) {
	if raceDetector {
		// Three replicas, a client, the watch and tmux under the race
		// detector starve each other on a small host until even a status
		// answer misses its timeout; the status code itself runs under
		// the detector in TestWatchStatusRedrawsUntilCancelled and
		// TestClientEndpoint.
		t.Skip("end-to-end terminal test: not under the race detector")
	}
	tmux := requireTmux(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	g, err := newInprocGroup(3, PollSpinYield)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	peers := loopbackPeers(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tt := &tcpTarget{ids: g.ids, clients: map[rdma.NodeID]*nodeClient{}}
	stopServer := map[rdma.NodeID]context.CancelFunc{}
	addrOf := map[rdma.NodeID]string{}
	var addrs []string
	for _, id := range g.ids {
		cfg, err := ParseConfig([]byte(fmt.Sprintf("id: %d\ncluster_id: 1\npeers:\n%srdma:\n  interface: lo\nsecurity:\n  insecure: true\n", id, peers)))
		if err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithCancel(ctx)
		stopServer[id] = scancel
		srv := &nodeServer{cfg: cfg, self: cfg.Self(), logger: log.New(io.Discard, "", 0), started: time.Now(), ctx: sctx, nd: g.nodes[id]}
		ln, err := net.Listen("tcp", cfg.Self().ClientAddress)
		if err != nil {
			t.Fatal(err)
		}
		go srv.serve(ln)
		addr := cfg.Self().ClientAddress
		tt.clients[id] = newNodeClient(addr)
		addrOf[id] = addr
		addrs = append(addrs, addr)
	}
	defer func() {
		for _, c := range tt.clients {
			c.close()
		}
	}()

	// A steady stream of orders, a few hundred a second: the leader's
	// commit latency has samples, without starving the replicas' drivers
	// on a small host.
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	var acked atomic.Int64
	rec := startRunRecorder(g, &acked)
	defer rec.stop()
	go func() {
		defer close(loadDone)
		c := newClient(tt)
		gen := orderbook.NewLoadGen(11, orderbook.DefaultLoadGenConfig())
		for loadCtx.Err() == nil {
			if _, err := c.submit(loadCtx, gen.Next(nil)); err == nil {
				acked.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	defer func() { stopLoad(); <-loadDone }()

	pane := startTmuxPane(t, tmux, 170, 20, []string{"MU_TEST_RUN_AS_MU=1"},
		exe, "status", "--watch", "--interval", "1s", "--timeout", "2s", "--addr", strings.Join(addrs, ","))

	// Generous bounds: a loaded 2-core host stalls for seconds at times.
	wait := envDuration(t, "MU_TEST_WATCH_WAIT", 90*time.Second)
	poll := func(what string, ok func(watchScreen) bool) watchScreen {
		t.Helper()
		var last watchScreen
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			text, err := pane.screen()
			if err != nil {
				t.Fatalf("tmux capture-pane: %v", err)
			}
			last = parseWatchScreen(text)
			if ok(last) {
				return last
			}
		}
		t.Fatalf("the screen never showed %s within %v; last screen:\n%s", what, wait, last.text)
		return last
	}

	idAt := func(addr string) rdma.NodeID {
		for id, a := range addrOf {
			if a == addr {
				return id
			}
		}
		return 0
	}
	// The screen's leader must be the group's when it is killed: on a
	// loaded host leadership can move between a frame and the kill, so
	// wait for a frame that agrees with the replicas.
	before := poll("one leader, named by every node and leading, with the latency of 50 commits", func(s watchScreen) bool {
		a, ok := s.leaderAddr()
		return ok && len(s.roles) == 3 && len(s.latency[a]) == 2 && s.proposals() >= 50 && g.nodes[idAt(a)].n.IsLeader()
	})
	// Each second a new frame: the time line changes.
	next := poll("a second frame", func(s watchScreen) bool { return s.stamp != "" && s.stamp != before.stamp })
	if next.stamp == before.stamp {
		t.Fatal("the frame was not redrawn")
	}
	oldAddr, _ := before.leaderAddr()
	old := idAt(oldAddr)

	// Kill the leader the way a crash would: its replica stops and its
	// client endpoint goes away.
	killedAt := time.Now()
	rec.killed(old)
	if err := g.kill(old); err != nil {
		t.Fatal(err)
	}
	stopServer[old]()
	during := poll("a frame drawn after the kill, with the old leader unreachable", func(s watchScreen) bool {
		return s.since(killedAt) > 0 && s.roles[oldAddr] == "unreachable" && s.ids[oldAddr] == fmt.Sprint(old)
	})
	// Three frames on, the new leader's latency is its own.
	after := poll("a new leader with its commit latency", func(s watchScreen) bool {
		a, ok := s.leaderAddr()
		return ok && a != oldAddr && s.roles[oldAddr] == "unreachable" && len(s.latency[a]) == 2 &&
			s.proposals() > 0 && s.since(killedAt) > during.since(killedAt)+2500*time.Millisecond
	})
	newAddr, _ := after.leaderAddr()
	if !strings.Contains(after.summary, "leader "+after.ids[newAddr]+" (named by 2 of 2 answering)") {
		t.Errorf("summary %q does not name the new leader %s", after.summary, after.ids[newAddr])
	}

	if path := os.Getenv("MU_STATUS_WATCH_RECORD"); path != "" {
		rec.stop()
		if err := os.WriteFile(path, []byte(statusWatchRecording(addrs, before, during, after, old, killedAt, rec.leaderless(killedAt))), 0o644); err != nil {
			t.Fatal(err)
		}
		// The run as a timeline, beside the recording.
		if err := rec.draw(strings.TrimSuffix(path, filepath.Ext(path))+".png", old, killedAt); err != nil {
			t.Fatal(err)
		}
	}
}

// statusWatchRecording is docs/status-watch.md: the three frames with what
// happened between them and the command that records them again.
func statusWatchRecording(addrs []string, before, during, after watchScreen, old rdma.NodeID, killedAt time.Time, leaderless time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# mu status --watch through a leader change

A recorded terminal session: `+"`mu status --watch`"+` running in tmux while the
group's leader is killed. Three replicas run over the in-process fabric
(rdma/inproc, no RDMA device) inside the test process (spin-yield drivers,
default timings, as `+"`mu demo`"+` runs them), each serving its
client endpoint on 127.0.0.1 as `+"`mu node`"+` does; a client proposes orders
one at a time through the leader, 2 ms apart. The command in the pane is

    mu status --watch --interval 1s --timeout 2s --addr %s

and the frames below are the pane's text, read with `+"`tmux capture-pane -p`"+`.
Recorded on a host with %d CPUs shared with other work (load average %s
at the end of the run): the latencies are
those of a loaded machine and of the in-process fabric, not of RDMA
hardware.

Regenerate this file (the test fails if the screen never shows the new
leader):

    MU_STATUS_WATCH_RECORD=$PWD/docs/status-watch.md go test -count=1 -run TestStatusWatchShowsLeaderChangeInTmux ./cmd/mu

How to read a frame: the first line is the frame's time and refresh
interval; the group line names the leader most answering nodes name (and
by how many), the highest commit index, the commit latency p50 and p99 of
the proposals the leader answered in the last %v (from the endpoint's call
to its answer), and the followers it flags fail-slow. Then one row per
node: role, the leader it names, commit and applied index, its own commit
p50/p99 (only the node that takes proposals has one), its advertised
health, the hardware verdict (unknown: no hardware monitor in this run),
and each peer's pull score (0..15, * when its detector calls the peer
failed) with the health that peer advertises. A node that stops answering
keeps its id and what it was when last seen; errors and fail-slow details
follow the table.

![the run: leader and throughput over time, the kill shaded](status-watch.png)

`+"`status-watch.png`"+`, written by the same command: who led (as the replicas
report it, sampled every 100 ms) and the orders acknowledged per second
over the whole run, the kill shaded from the moment it struck. In this run
no replica led for %v after the kill (to the 100 ms sample). The host's
CPUs are shared by the replicas, the client, the watch and other work:
throughput is CPU-bound, and a stall can move leadership for a moment
without any fault.

## Before: node %d leads

`+"```"+`
%s
`+"```"+`

## Node %d killed at %s (replica stopped, endpoint gone): the first frame after

Depending on where the refresh fell, this frame shows the survivors
before they agreed on a new leader (still naming the dead node, its scores
falling towards failed, marked *) or already after.

`+"```"+`
%s
`+"```"+`

## Three frames later: the new leader's own commit latency

`+"```"+`
%s
`+"```"+`
`, strings.Join(addrs, ","), runtime.NumCPU(), loadAverage(), commitWindowAge, leaderless.Round(100*time.Millisecond), old, before.text, old, killedAt.Format(watchStamp), during.text, after.text)
	return b.String()
}

// runRecorder samples, every 100 ms, which replica leads and how many
// orders were acknowledged, for the run's timeline figure.
type runRecorder struct {
	g       *inprocGroup
	acked   *atomic.Int64
	start   time.Time
	dead    atomic.Int64 // the killed replica's id, 0 before the kill
	done    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup

	leaders []chart.LeaderChange
	rates   []chart.Rate
}

const recordEvery = 100 * time.Millisecond

func startRunRecorder(g *inprocGroup, acked *atomic.Int64) *runRecorder {
	r := &runRecorder{g: g, acked: acked, start: time.Now(), done: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		tick := time.NewTicker(recordEvery)
		defer tick.Stop()
		last, lastAt, leader := int64(0), r.start, -2
		for {
			select {
			case <-r.done:
				return
			case now := <-tick.C:
				at := now.Sub(r.start).Seconds()
				n := acked.Load()
				r.rates = append(r.rates, chart.Rate{AtS: at, Value: float64(n-last) / now.Sub(lastAt).Seconds()})
				last, lastAt = n, now
				l := -1
				for _, id := range g.ids {
					if int64(id) != r.dead.Load() && g.nodes[id].n.IsLeader() {
						l = int(id)
					}
				}
				if l != leader {
					r.leaders = append(r.leaders, chart.LeaderChange{AtS: at, Node: l})
					leader = l
				}
			}
		}
	}()
	return r
}

// leaderless is how long, from t, no replica was seen leading: up to the
// first sample after t that found a leader.
func (r *runRecorder) leaderless(t time.Time) time.Duration {
	from := t.Sub(r.start).Seconds()
	for _, l := range r.leaders {
		if l.AtS > from && l.Node >= 0 {
			return time.Duration((l.AtS - from) * float64(time.Second))
		}
	}
	return 0
}

// killed says replica id is gone: it no longer counts as leading.
func (r *runRecorder) killed(id rdma.NodeID) { r.dead.Store(int64(id)) }

func (r *runRecorder) stop() {
	r.stopped.Do(func() { close(r.done) })
	r.wg.Wait()
}

// draw writes the timeline to path; the kill is a span from its moment to
// the end (the node stays down).
func (r *runRecorder) draw(path string, old rdma.NodeID, killedAt time.Time) error {
	end := 0.0
	if n := len(r.rates); n > 0 {
		end = r.rates[n-1].AtS
	}
	kill := killedAt.Sub(r.start).Seconds()
	plots, err := chart.TimelinePlots(chart.Timeline{
		Title:           "mu status --watch run: 3 replicas over the in-process fabric, the leader killed",
		EndS:            end,
		Faults:          []chart.Fault{{Name: fmt.Sprintf("node %d killed", old), StartS: kill, EndS: end}},
		Leaders:         r.leaders,
		Throughput:      r.rates,
		ThroughputLabel: "orders acknowledged per second",
		NodeName:        func(n int) string { return fmt.Sprintf("node %d", n) },
	})
	if err != nil {
		return err
	}
	rows := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		rows[i] = []*plot.Plot{p}
	}
	return chart.Save(path, vg.Points(720), vg.Points(420), rows...)
}

// loadAverage is the host's one-minute load average, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}
