package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/rdma"
)

// restartOptions shapes `mu bench restart`: runs of an order stream ended
// by SIGKILL of every node, then a restart of all from their data
// directories and a check of every acknowledged order.
type restartOptions struct {
	runs       int
	durability string // memory, async or sync
	// dataRoot holds each group's data directories ("" : the system's
	// temporary directory).
	dataRoot string
	seed     uint64
	// Each run kills once between minOrders and maxOrders orders were
	// acknowledged in it, after a further random pause below killJitter.
	minOrders, maxOrders int
	killJitter           time.Duration
	// group is the process group's shape (binary, device, timings);
	// durability and dataRoot are set per group.
	group procGroupOptions
	// recoverWait bounds, in sync mode, restart -> a leader, its first new
	// acknowledgement and every node converged; in the other modes, the
	// wait for the restarted replicas to run.
	recoverWait time.Duration
	// leaderGrace is how long memory mode looks for a leader after the
	// restart (none is expected: every replica rejoins).
	leaderGrace time.Duration
	keepData    bool
	// onRun reports each run as it ends (may be nil).
	onRun func(restartRun)
	// progress receives a line as each run starts (may be nil).
	progress io.Writer
}

// restartRun is one total failure and its restart.
type restartRun struct {
	Run        int
	Acked      int // orders acknowledged in this run (the probe after the restart not counted)
	GroupAcked int // acknowledged over this group's life, all checked this run
	Lost       int // acknowledged orders found missing for the first time
	Resent     int // extra copies of acknowledged orders in the log (resends, rejected as duplicates)
	Led        bool
	LeaderNs   int64 // restart -> a node leads
	RecoverNs  int64 // restart -> the first new order acknowledged
	// LostAgeMinNs and LostAgeMaxNs bound how long before the kill the
	// lost orders were acknowledged (the loss window as the client saw it).
	LostAgeMinNs, LostAgeMaxNs int64
	Err                        error
}

// restartReport is the whole benchmark.
type restartReport struct {
	Runs  []restartRun
	Acked int // every order acknowledged, each once
	Lost  int
}

// restartGroup is one process group over its life across runs.
type restartGroup struct {
	g       *procGroup
	dataDir string
	gen     *orderbook.LoadGen
	acks    []ack
	lost    map[ackKey]bool
}

type ackKey struct {
	index consensus.Index
	cmd   string
}

func keyOf(a ack) ackKey { return ackKey{a.Index, string(a.Cmd)} }

// restartLoadGen is the order mix without the generator's deliberate
// duplicates: every order is distinct, so each acknowledged one can be
// found in the restored log and counted.
func restartLoadGen(seed uint64) *orderbook.LoadGen {
	c := orderbook.DefaultLoadGenConfig()
	c.DuplicatePct = 0
	return orderbook.NewLoadGen(seed, c)
}

func runRestartBench(ctx context.Context, o restartOptions, out io.Writer) (restartReport, error) {
	var rep restartReport
	switch o.durability {
	case "memory", "async", "sync":
	default:
		return rep, fmt.Errorf("--durability: %q is not memory, async or sync", o.durability)
	}
	rng := rand.New(rand.NewPCG(o.seed, 0x6d75))
	var rg *restartGroup
	defer func() {
		if rg != nil {
			rg.close(o.keepData)
		}
	}()
	var failed []error
	for run := 1; run <= o.runs; run++ {
		if rg == nil {
			var err error
			if rg, err = newRestartGroup(ctx, o, o.seed+uint64(run)); err != nil {
				return rep, fmt.Errorf("run %d: %w", run, err)
			}
			if run == 1 {
				fmt.Fprintf(out, "%s; durability %s; data on %s\n", rg.g.describe(), o.durability, describeFS(rg.dataDir))
			}
		}
		k := o.minOrders + rng.IntN(o.maxOrders-o.minOrders+1)
		jitter := time.Duration(rng.Int64N(int64(o.killJitter) + 1))
		if o.progress != nil {
			fmt.Fprintf(o.progress, "run %d/%d: streaming orders; every node is killed after %d acknowledged\n", run, o.runs, k)
		}
		r := rg.run(ctx, o, run, k, jitter)
		rep.Runs = append(rep.Runs, r)
		rep.Acked += r.Acked
		if r.Led && r.RecoverNs > 0 {
			rep.Acked++ // the probe acknowledged after the restart
		}
		rep.Lost += r.Lost
		writeRestartRun(out, o, r)
		if o.onRun != nil {
			o.onRun(r)
		}
		if r.Err != nil {
			failed = append(failed, fmt.Errorf("run %d: %w", run, r.Err))
		}
		// A group that elected a leader and converged goes on: the next
		// run checks everything it ever acknowledged again. One that did
		// not is replaced.
		if !r.Led || r.Err != nil {
			rg.close(o.keepData)
			rg = nil
		}
	}
	fmt.Fprintf(out, "%s\n", restartSummary(o, rep))
	fmt.Fprintf(out, "lost %d of %d acknowledged\n", rep.Lost, rep.Acked)
	if o.durability == "sync" && rep.Lost > 0 {
		failed = append(failed, fmt.Errorf("sync mode lost %d of %d acknowledged orders", rep.Lost, rep.Acked))
	}
	return rep, errors.Join(failed...)
}

func newRestartGroup(ctx context.Context, o restartOptions, seed uint64) (*restartGroup, error) {
	root := o.dataRoot
	if root == "" {
		root = os.TempDir()
	}
	dir, err := os.MkdirTemp(root, "mu-restart-")
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	opts := o.group
	opts.n, opts.durability, opts.dataRoot = 3, o.durability, dir
	g, err := startProcGroup(ctx, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &restartGroup{g: g, dataDir: dir, gen: restartLoadGen(seed), lost: map[ackKey]bool{}}, nil
}

func (rg *restartGroup) close(keep bool) {
	rg.g.close()
	if !keep {
		os.RemoveAll(rg.dataDir)
	}
}

// run streams orders, kills every node once k were acknowledged (and
// jitter later), restarts them all and checks what the group holds.
func (rg *restartGroup) run(ctx context.Context, o restartOptions, run, k int, jitter time.Duration) restartRun {
	r := restartRun{Run: run}
	s := startOrderStream(ctx, rg.g, rg.gen)
	if err := s.waitCount(ctx, k, o.recoverWait); err != nil {
		s.stop()
		r.Err = fmt.Errorf("before the kill: %w", err)
		return r
	}
	time.Sleep(jitter)
	killNs := time.Now().UnixNano()
	killErr := rg.g.killAll()
	acks, streamErr := s.stop()
	r.Acked = len(acks)
	rg.acks = append(rg.acks, acks...)
	if killErr != nil {
		r.Err = fmt.Errorf("killing the nodes: %w", killErr)
		return r
	}
	if streamErr != nil {
		r.Err = fmt.Errorf("order stream: %w", streamErr)
		return r
	}

	t0 := time.Now()
	if err := rg.g.restartFromDisk(); err != nil {
		r.Err = fmt.Errorf("restart: %w", err)
		return r
	}
	var logs map[rdma.NodeID]nodeLog
	var err error
	switch o.durability {
	case "sync":
		logs, err = rg.recoverSync(ctx, o, t0, &r)
	case "async":
		logs, err = rg.recoverAsync(ctx, o, t0, &r)
	default:
		logs, err = rg.recoverWithoutVote(ctx, o, t0, &r)
	}
	if err != nil {
		r.Err = err
		return r
	}
	r.GroupAcked = len(rg.acks)
	c := checkRestored(rg.acks, logs, r.Led)
	r.Resent = c.resent
	for _, a := range c.lost {
		if rg.lost[keyOf(a)] {
			continue
		}
		rg.lost[keyOf(a)] = true
		r.Lost++
		age := killNs - a.AtNs
		if r.LostAgeMaxNs == 0 || age > r.LostAgeMaxNs {
			r.LostAgeMaxNs = age
		}
		if r.LostAgeMinNs == 0 || age < r.LostAgeMinNs {
			r.LostAgeMinNs = age
		}
	}
	r.Err = c.err
	if r.Err == nil && r.Led && len(c.lost) == 0 {
		// Beyond holding every order: the same commands in the same order
		// and the same books everywhere.
		r.Err = verifyLogs(rg.acks, logs)
	}
	return r
}

// firstOrder waits for a leader after the restart and has it acknowledge
// one new order: the times to lead and to recover go into r.
func (rg *restartGroup) firstOrder(ctx context.Context, o restartOptions, t0 time.Time, r *restartRun) (ack, error) {
	if err := rg.g.waitLeader(ctx, o.recoverWait); err != nil {
		return ack{}, fmt.Errorf("after the restart: %w", err)
	}
	r.Led, r.LeaderNs = true, int64(time.Since(t0))
	pctx, cancel := context.WithTimeout(ctx, o.recoverWait)
	a, err := newClient(rg.g).submit(pctx, rg.gen.Next(nil))
	cancel()
	if err != nil {
		return ack{}, fmt.Errorf("the first order after the restart: %w", err)
	}
	r.RecoverNs = a.AtNs - t0.UnixNano()
	rg.acks = append(rg.acks, a)
	return a, nil
}

// recoverSync waits for a leader, has it acknowledge one new order (the
// time to recover) and waits for every node to apply everything
// acknowledged.
func (rg *restartGroup) recoverSync(ctx context.Context, o restartOptions, t0 time.Time, r *restartRun) (map[rdma.NodeID]nodeLog, error) {
	g := rg.g
	if _, err := rg.firstOrder(ctx, o, t0, r); err != nil {
		return nil, err
	}
	var top consensus.Index
	for _, a := range rg.acks {
		top = max(top, a.Index)
	}
	cctx, cancel := context.WithTimeout(ctx, o.recoverWait)
	defer cancel()
	logs, err := converged(cctx, g, g.ids, top)
	if err != nil {
		// Check what they hold anyway: a loss is named as such.
		if logs, lerr := g.logs(ctx, g.ids); lerr == nil {
			if c := checkRestored(rg.acks, logs, true); len(c.lost) > 0 {
				return logs, nil
			}
		}
		return nil, err
	}
	return logs, nil
}

// recoverAsync is async mode after a total failure: every replica votes
// with its journal in an election all take part in, so a leader is
// expected; it acknowledges one new order (the time to recover) and every
// node applies up to it. Acknowledged orders above the journals' reach
// (the loss window) may be gone, and their indexes hold other orders.
func (rg *restartGroup) recoverAsync(ctx context.Context, o restartOptions, t0 time.Time, r *restartRun) (map[rdma.NodeID]nodeLog, error) {
	g := rg.g
	a, err := rg.firstOrder(ctx, o, t0, r)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, o.recoverWait)
	defer cancel()
	return converged(cctx, g, g.ids, a.Index)
}

// recoverWithoutVote is memory mode after a total failure: every replica
// comes back empty and rejoins, so none is expected to lead. It reads
// what each restored.
func (rg *restartGroup) recoverWithoutVote(ctx context.Context, o restartOptions, t0 time.Time, r *restartRun) (map[rdma.NodeID]nodeLog, error) {
	g := rg.g
	deadline := time.Now().Add(o.recoverWait)
	var logs map[rdma.NodeID]nodeLog
	for {
		var err error
		if logs, err = g.logs(ctx, g.ids); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the restarted replicas did not answer within %v: %w", o.recoverWait, err)
		}
		if err := g.anyExited(); err != nil {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every replica runs: give a leader the grace to appear.
	lead := time.Now().Add(o.leaderGrace)
	for time.Now().Before(lead) {
		if _, ok := g.leader(ctx); ok {
			r.Led, r.LeaderNs = true, int64(time.Since(t0))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.Led {
		// Unexpected in these modes, but then it serves: read again after
		// it caught the others up.
		if l, err := g.logs(ctx, g.ids); err == nil {
			logs = l
		}
	}
	return logs, nil
}

// restoredCheck is what checkRestored found.
type restoredCheck struct {
	lost   []ack
	resent int
	err    error
}

// checkRestored looks for every acknowledged order in the nodes' applied
// logs at the index it was acknowledged at. strict (a leader was elected
// and the nodes converged) counts an order lost when any node lacks it;
// otherwise when every node lacks it (the best a restore could pick).
// Each node's log is also replayed into an empty book: an acknowledged
// order must take effect exactly once (a resend the crash left in the log
// twice is rejected by the book's sequence numbers).
func checkRestored(acks []ack, logs map[rdma.NodeID]nodeLog, strict bool) restoredCheck {
	var c restoredCheck
	ids := slices.Sorted(func(yield func(rdma.NodeID) bool) {
		for id := range logs {
			if !yield(id) {
				return
			}
		}
	})
	if len(ids) == 0 {
		c.err = errors.New("no node to check")
		return c
	}
	held := map[rdma.NodeID]map[ackKey]bool{}
	for _, id := range ids {
		l := logs[id]
		h := map[ackKey]bool{}
		for _, e := range l.Entries {
			h[ackKey{e.Index, string(e.Cmd)}] = true
		}
		held[id] = h
	}
	var errs []error
	unchecked := 0
	for _, a := range acks {
		k := keyOf(a)
		holders, checkable := 0, 0
		for _, id := range ids {
			if a.Index <= logs[id].from() {
				continue // came in a snapshot or was trimmed: not checkable one by one here
			}
			checkable++
			if held[id][k] {
				holders++
			}
		}
		switch {
		case checkable == 0:
			unchecked++
		case strict && holders < checkable, !strict && holders == 0:
			c.lost = append(c.lost, a)
		}
	}
	if unchecked > 0 {
		errs = append(errs, fmt.Errorf("%d acknowledged orders lie below every node's snapshot or trimmed applied log: not checked one by one", unchecked))
	}
	acked := map[string]bool{}
	for _, a := range acks {
		acked[string(a.Cmd)] = true
	}
	for _, id := range ids {
		l := logs[id]
		if l.from() > 0 {
			continue
		}
		book := orderbook.New(orderbook.DefaultConfig())
		took := map[string]int{}    // copies the book accepted
		refused := map[string]int{} // copies refused as duplicates
		copies := map[string]int{}
		for _, e := range l.Entries {
			_, err := book.Apply(e.Cmd)
			if !acked[string(e.Cmd)] {
				continue
			}
			copies[string(e.Cmd)]++
			switch {
			case err == nil:
				took[string(e.Cmd)]++
			case errors.Is(err, orderbook.ErrDuplicate):
				refused[string(e.Cmd)]++
			}
		}
		resent, wrong := 0, 0
		for cmd, n := range copies {
			resent += n - 1
			// Twice is a double execution; refused as a duplicate every
			// time means a later order of its client overtook it. A
			// command the book rejects on its merits (a cancel of an
			// order no longer resting) is rejected alike every time.
			if took[cmd] > 1 || refused[cmd] == n {
				wrong++
			}
		}
		c.resent = max(c.resent, resent)
		if wrong > 0 {
			errs = append(errs, fmt.Errorf("node %d: %d acknowledged orders did not take effect exactly once in its book", id, wrong))
		}
	}
	c.err = errors.Join(errs...)
	return c
}

// orderStream proposes orders one after another and records each
// acknowledgement, until stopped.
type orderStream struct {
	mu     sync.Mutex
	acks   []ack
	count  atomic.Int64
	halt   atomic.Bool
	cancel context.CancelFunc
	done   chan error
}

func startOrderStream(ctx context.Context, g *procGroup, gen *orderbook.LoadGen) *orderStream {
	s := &orderStream{done: make(chan error, 1)}
	sctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	c := newClient(g)
	// A sync commit waits on disks that may stall for hundreds of ms
	// under emulation: let the node's own proposal timeout answer rather
	// than resend early (a resend commits a duplicate the book rejects).
	c.attemptTimeout = proposeTimeout + time.Second
	go func() {
		for !s.halt.Load() {
			a, err := c.submit(sctx, gen.Next(nil))
			if err != nil {
				if s.halt.Load() {
					break
				}
				s.done <- err
				return
			}
			s.mu.Lock()
			s.acks = append(s.acks, a)
			s.mu.Unlock()
			s.count.Add(1)
		}
		s.done <- nil
	}()
	return s
}

// waitCount waits until n orders were acknowledged; it gives up when
// none was for stall.
func (s *orderStream) waitCount(ctx context.Context, n int, stall time.Duration) error {
	last, lastAt := s.count.Load(), time.Now()
	for s.count.Load() < int64(n) {
		if c := s.count.Load(); c != last {
			last, lastAt = c, time.Now()
		} else if time.Since(lastAt) > stall {
			return fmt.Errorf("no order acknowledged for %v (%d of %d)", stall, c, n)
		}
		select {
		case err := <-s.done:
			if err == nil {
				err = errors.New("stream stopped")
			}
			s.done <- err
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Microsecond):
		}
	}
	return nil
}

// stop ends the stream at once (the proposal in flight, if any, is
// abandoned unacknowledged) and returns what was acknowledged.
func (s *orderStream) stop() ([]ack, error) {
	s.halt.Store(true)
	s.cancel()
	err := <-s.done
	s.done <- err
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acks), err
}

// describeFS names the file system under dir, warning when its fsync
// proves nothing.
func describeFS(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Sprintf("%s (file system unknown: %v)", dir, err)
	}
	switch st.Type {
	case unix.TMPFS_MAGIC:
		return dir + " (tmpfs: memory, an fsync there persists nothing)"
	case unix.EXT4_SUPER_MAGIC:
		return dir + " (ext4)"
	case unix.XFS_SUPER_MAGIC:
		return dir + " (xfs)"
	case unix.BTRFS_SUPER_MAGIC:
		return dir + " (btrfs)"
	case unix.V9FS_MAGIC:
		return dir + " (9p share)"
	}
	return fmt.Sprintf("%s (file system 0x%x)", dir, st.Type)
}

func secs(ns int64) string { return fmt.Sprintf("%.2f s", float64(ns)/1e9) }

func writeRestartRun(w io.Writer, o restartOptions, r restartRun) {
	fmt.Fprintf(w, "run %d/%d: %d acknowledged", r.Run, o.runs, r.Acked)
	if r.GroupAcked > r.Acked {
		fmt.Fprintf(w, " (%d checked, over this group's runs)", r.GroupAcked)
	}
	fmt.Fprintf(w, "; all nodes SIGKILLed; ")
	switch {
	case r.Led && r.RecoverNs > 0:
		fmt.Fprintf(w, "recovered: leader %s after the restart, first new order acknowledged at %s", secs(r.LeaderNs), secs(r.RecoverNs))
	case r.Led:
		fmt.Fprintf(w, "a leader %s after the restart", secs(r.LeaderNs))
	default:
		fmt.Fprintf(w, "no leader within %v of the replicas running again (in %s mode every replica rejoins empty after a total failure)", o.leaderGrace, o.durability)
	}
	fmt.Fprintf(w, "; lost %d", r.Lost)
	if r.Lost > 0 {
		fmt.Fprintf(w, " (acknowledged %s to %s before the kill)", msec(r.LostAgeMinNs), msec(r.LostAgeMaxNs))
	}
	if r.Resent > 0 {
		fmt.Fprintf(w, "; %d resends in the log, rejected as duplicates", r.Resent)
	}
	if r.Err != nil {
		fmt.Fprintf(w, "; FAILED: %v", r.Err)
	} else if r.Lost == 0 {
		fmt.Fprintf(w, "; every acknowledged order held exactly once")
	}
	fmt.Fprintln(w)
}

func msec(ns int64) string { return fmt.Sprintf("%.1f ms", float64(ns)/1e6) }

// restartSummary is the recovery times over the runs and what the mode
// promised.
func restartSummary(o restartOptions, rep restartReport) string {
	var rec []int64
	for _, r := range rep.Runs {
		if r.Led && r.RecoverNs > 0 {
			rec = append(rec, r.RecoverNs)
		}
	}
	s := fmt.Sprintf("%d runs, durability %s: ", len(rep.Runs), o.durability)
	if len(rec) > 0 {
		s += fmt.Sprintf("time to recover (restart -> first new order acknowledged) p50 %s, max %s over %d runs; ",
			secs(quantileNs(rec, .5)), secs(slices.Max(rec)), len(rec))
	}
	switch o.durability {
	case "sync":
		s += "promise: nothing acknowledged is lost"
	case "async":
		s += "promise: at most the loss window (entries not yet flushed when the nodes died)"
	case "memory":
		s += "promise: none across a total failure (the log lives in memory only)"
	}
	return s
}

func newBenchRestartCmd() *cobra.Command {
	var (
		o                         restartOptions
		seed                      int64
		drive, device             string
		readInterval, permTimeout time.Duration
	)
	c := &cobra.Command{
		Use:   "restart",
		Short: "SIGKILL every `mu node` of a group under an order stream, restart all from their data directories, count lost acknowledged orders",
		Long: `restart starts 3 mu node processes on the RDMA device with the given
durability, each journaling in its own directory under --data-dir, streams
orders through the client endpoint and records every acknowledged one. At a
random moment (after --orders-min to --orders-max acknowledgements) every
node is SIGKILLed; all restart from their data directories as members of an
existing cluster. In sync mode a leader must be elected and acknowledge a
new order (the time to recover), every node must then hold every
acknowledged order at its index, taking effect exactly once, with identical
logs and books; the group goes on to the next run and everything it ever
acknowledged is checked again. Async mode recovers the same way, except
that the acknowledged orders no journal had made durable (the reported loss
window) may be lost: each is counted, with how long before the kill it was
acknowledged. In memory mode every replica rejoins empty after a total
failure, so no leader is expected: what each restored is read and an order
counts as lost when no node holds it; the next run starts a new group. The
last line is "lost X of N acknowledged"; the exit status is non-zero on any
loss in sync mode.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.runs < 1 {
				return fmt.Errorf("--runs: %d must be at least 1", o.runs)
			}
			if o.minOrders < 1 || o.maxOrders < o.minOrders {
				return fmt.Errorf("--orders-min %d, --orders-max %d: want 1 <= min <= max", o.minOrders, o.maxOrders)
			}
			if o.dataRoot == "" {
				o.dataRoot = os.Getenv("SOFTROCE_DISK")
			}
			o.seed = uint64(seed)
			o.group = procGroupOptions{device: device, drive: drive, readInterval: readInterval, permissionTimeout: permTimeout}
			o.progress = cmd.ErrOrStderr()
			_, err := runRestartBench(cmd.Context(), o, cmd.OutOrStdout())
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&o.runs, "runs", 20, "total failures to inflict")
	f.StringVar(&o.durability, "durability", "sync", "the nodes' durability: memory, async or sync")
	f.StringVar(&o.dataRoot, "data-dir", "", "where the nodes' data directories go (default $SOFTROCE_DISK, the VM's scratch disk, else the temporary directory)")
	f.Int64Var(&seed, "seed", 1, "seed of the kill points and the orders")
	f.IntVar(&o.minOrders, "orders-min", 50, "fewest orders acknowledged in a run before the kill")
	f.IntVar(&o.maxOrders, "orders-max", 200, "most orders acknowledged in a run before the kill")
	f.DurationVar(&o.killJitter, "kill-jitter", 5*time.Millisecond, "a random further pause before the kill, with the stream running")
	f.DurationVar(&o.recoverWait, "recover-timeout", 3*time.Minute, "bound on a restart's recovery")
	f.DurationVar(&o.leaderGrace, "leader-grace", 10*time.Second, "memory: how long to look for a leader after the restart")
	f.BoolVar(&o.keepData, "keep-data", false, "keep the data directories")
	f.StringVar(&drive, "drive", PollIdleSleep, "nodes' poll_mode")
	f.StringVar(&device, "device", "", "RDMA device (default: the first)")
	f.DurationVar(&readInterval, "read-interval", 0, "nodes' pull-score read interval (default 40us)")
	f.DurationVar(&permTimeout, "permission-timeout", 0, "nodes' bound on each leader-change step (default 2ms)")
	return c
}
