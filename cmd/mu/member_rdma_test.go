package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/rdma"
)

// Four `mu node` processes on the RDMA device, three voting and node 4 a
// learner. Under a continuous order stream node 3 is SIGKILLed for good
// and replaced: node 4 promoted, node 3 removed. Every acknowledged order
// must be applied on every node of the new group, with identical logs.
//
// Not in make test's device run (its pattern is Processes): four
// processes on the emulated VM's CPUs let leaders 1 and 2 take the lead
// from each other every few seconds in one of three runs, and the run
// then outlasts its bound. Run it with
// `make rdma-tests && make rdma-run CMD="build/rdmatest/cmd_mu.test -test.run=VMReplaceVoter -test.v"`.
func TestVMReplaceVoterUnderOrders(t *testing.T) {
	requireRDMA(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logDir := cmp.Or(os.Getenv("MU_TEST_LOG_DIR"), t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), envDuration(t, "MU_TEST_TIMEOUT", 15*time.Minute))
	defer cancel()
	g, err := startProcGroup(ctx, procGroupOptions{
		// A 1 MiB log: a change is in force LogSlots after it, and the
		// leader pads the log to get there.
		n: 4, voters: []rdma.NodeID{1, 2, 3}, logBytes: 1 << 20, bin: exe, env: []string{"MU_TEST_RUN_AS_MU=1"}, logDir: logDir,
		drive:             envOr("MU_TEST_DRIVE", PollIdleSleep),
		readInterval:      envDuration(t, "MU_TEST_READ_INTERVAL", 20*time.Millisecond),
		permissionTimeout: envDuration(t, "MU_TEST_PERMISSION_TIMEOUT", 500*time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	defer func() {
		t.Log(leaderSummary(logDir, g.ids))
		if t.Failed() {
			for _, id := range g.ids {
				b, _ := os.ReadFile(filepath.Join(logDir, fmt.Sprintf("node%d.log", id)))
				t.Logf("node%d.log:\n%s", id, b)
			}
		}
	}()

	gen := orderbook.NewLoadGen(5, orderbook.DefaultLoadGenConfig())
	c := newClient(g)
	var (
		mu    sync.Mutex
		acks  []ack
		count atomic.Int64
		halt  atomic.Bool
	)
	streamErr := make(chan error, 1)
	go func() {
		for !halt.Load() {
			a, err := c.submit(ctx, gen.Next(nil))
			if err != nil {
				streamErr <- err
				return
			}
			mu.Lock()
			acks = append(acks, a)
			mu.Unlock()
			count.Add(1)
		}
		streamErr <- nil
	}()
	waitCount := func(n int64) {
		t.Helper()
		for count.Load() < n {
			select {
			case err := <-streamErr:
				t.Fatalf("order stream: %v", err)
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(time.Millisecond):
			}
		}
	}
	// change asks whoever leads, again if leadership moved meanwhile.
	change := func(add bool, id rdma.NodeID) {
		t.Helper()
		for attempt := 0; ; attempt++ {
			var err error
			for _, o := range g.ids {
				st, serr := g.status(ctx, o)
				if serr != nil || !st.IsLeader {
					continue
				}
				if slices.Contains(st.Voters, id) == add {
					// Written already, by an earlier attempt or a
					// deposed leader (Voters includes a change not yet
					// in force; the next change waits for it).
					t.Logf("member add=%v %d: already written (seen on leader %d)", add, id, o)
					return
				}
				mctx, mcancel := context.WithTimeout(ctx, 2*time.Minute)
				var typ byte
				var b []byte
				typ, b, err = g.clients[o].call(mctx, endpoint.ReqMember, endpoint.EncodeMember(add, id, uint64(time.Minute/time.Millisecond)))
				mcancel()
				if err == nil {
					_, err = endpoint.DecodeBodyAnswer(typ, b)
				}
				if err == nil {
					t.Logf("member add=%v %d: in force (asked node %d)", add, id, o)
					return
				}
				t.Logf("member add=%v %d on node %d: %v", add, id, o, err)
			}
			if attempt > 20 {
				t.Fatalf("member add=%v %d: %v", add, id, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	waitCount(100)
	if err := g.kill(3); err != nil {
		t.Fatal(err)
	}
	t.Logf("node 3 killed after %d acknowledged orders", count.Load())
	change(true, 4)
	change(false, 3)
	waitCount(count.Load() + 100)
	halt.Store(true)
	if err := <-streamErr; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	mu.Lock()
	acked := slices.Clone(acks)
	mu.Unlock()
	var top consensus.Index
	for _, a := range acked {
		top = max(top, a.Index)
	}
	survivors := []rdma.NodeID{1, 2, 4}
	for _, id := range survivors {
		st, err := g.status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st.Voters, survivors) {
			t.Errorf("node %d: voters %v, want %v", id, st.Voters, survivors)
		}
	}
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Minute)
	defer ccancel()
	logs, err := converged(cctx, g, survivors, top)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyLogs(acked, logs); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acknowledged orders, every one applied on nodes %v with identical logs", len(acked), survivors)
}

// leaderSummary counts, from the nodes' logs, the terms each node led,
// why it contested each and why each ended.
func leaderSummary(logDir string, ids []rdma.NodeID) string {
	var b strings.Builder
	b.WriteString("leader changes:")
	for _, id := range ids {
		text, _ := os.ReadFile(filepath.Join(logDir, fmt.Sprintf("node%d.log", id)))
		took, why := map[string]int{}, map[string]int{}
		field := func(line, key string) string {
			_, v, _ := strings.Cut(line, key+"=")
			return strings.Fields(v + " ?")[0]
		}
		for _, line := range strings.Split(string(text), "\n") {
			switch {
			case strings.Contains(line, "msg=leading "):
				took[field(line, "took_over")]++
			case strings.Contains(line, `msg="stopped leading"`):
				why[field(line, "reason")]++
			}
		}
		fmt.Fprintf(&b, " node %d took over %v, stepped down %v;", id, took, why)
	}
	return b.String()
}
