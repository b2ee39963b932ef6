package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
)

// Three `mu node` processes in sync mode on the RDMA device, journaling on
// the VM's scratch disk when there is one: every node is SIGKILLed at once
// under the order stream, all restart from their data directories, a
// leader must be elected, and every acknowledged order must be held by
// every node exactly once. A short `mu bench restart --durability sync`.
func TestProcessesRestartSyncLosesNothing(t *testing.T) {
	requireRDMA(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	runs := 2
	if v := os.Getenv("MU_TEST_RESTART_RUNS"); v != "" {
		if runs, err = strconv.Atoi(v); err != nil || runs < 1 {
			t.Fatalf("MU_TEST_RESTART_RUNS=%q: want a positive number", v)
		}
	}
	dataRoot := os.Getenv("SOFTROCE_DISK")
	if dataRoot == "" {
		dataRoot = t.TempDir()
	}
	logDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), envDuration(t, "MU_TEST_TIMEOUT", 15*time.Minute))
	defer cancel()
	o := restartOptions{
		runs: runs, durability: "sync", dataRoot: dataRoot, seed: 12,
		minOrders: 10, maxOrders: 40, killJitter: 5 * time.Millisecond,
		group: procGroupOptions{
			bin: exe, env: []string{"MU_TEST_RUN_AS_MU=1"}, logDir: logDir,
			drive:             envOr("MU_TEST_DRIVE", PollIdleSleep),
			readInterval:      envDuration(t, "MU_TEST_READ_INTERVAL", 20*time.Millisecond),
			permissionTimeout: envDuration(t, "MU_TEST_PERMISSION_TIMEOUT", 500*time.Millisecond),
		},
		recoverWait: envDuration(t, "MU_TEST_RECOVER_WAIT", 3*time.Minute),
		leaderGrace: 10 * time.Second,
	}
	var out bytes.Buffer
	rep, err := runRestartBench(ctx, o, &out)
	t.Logf("mu bench restart --durability sync --runs %d:\n%s", runs, out.String())
	if err != nil {
		for _, f := range []string{"node1.log", "node2.log", "node3.log"} {
			b, _ := os.ReadFile(filepath.Join(logDir, f))
			t.Logf("%s:\n%s", f, b)
		}
		t.Fatal(err)
	}
	if len(rep.Runs) != runs || rep.Acked == 0 {
		t.Fatalf("%d runs, %d orders acknowledged: want %d runs and some orders", len(rep.Runs), rep.Acked, runs)
	}
	for _, r := range rep.Runs {
		if !r.Led || r.RecoverNs <= 0 {
			t.Errorf("run %d: no recovery recorded (led %v, %d ns)", r.Run, r.Led, r.RecoverNs)
		}
	}
	if want := "lost 0 of " + strconv.Itoa(rep.Acked) + " acknowledged\n"; !strings.HasSuffix(out.String(), want) {
		t.Errorf("last line is not %q", want)
	}
}

// The check itself: an acknowledged order missing from a node, or taking
// effect twice, is found; a resend rejected as a duplicate is not a loss.
func TestCheckRestoredFindsLossesAndDoubles(t *testing.T) {
	gen := restartLoadGen(3)
	var acks []ack
	var entries []appliedEntry
	for i := 1; i <= 40; i++ {
		cmd := gen.Next(nil)
		acks = append(acks, ack{Index: consensus.Index(i), Cmd: cmd})
		entries = append(entries, appliedEntry{Index: consensus.Index(i), Cmd: cmd})
	}
	full := nodeLog{Entries: entries}
	three := func(l1, l2, l3 nodeLog) map[rdma.NodeID]nodeLog {
		return map[rdma.NodeID]nodeLog{1: l1, 2: l2, 3: l3}
	}
	if c := checkRestored(acks, three(full, full, full), true); len(c.lost) != 0 || c.err != nil {
		t.Fatalf("all held: lost %d, %v", len(c.lost), c.err)
	}
	short := nodeLog{Entries: entries[:38]}
	if c := checkRestored(acks, three(full, short, full), true); len(c.lost) != 2 {
		t.Errorf("strict, one node lacks 2: lost %d, want 2", len(c.lost))
	}
	if c := checkRestored(acks, three(full, short, full), false); len(c.lost) != 0 {
		t.Errorf("best node holds all: lost %d, want 0", len(c.lost))
	}
	if c := checkRestored(acks, three(nodeLog{}, short, nodeLog{}), false); len(c.lost) != 2 {
		t.Errorf("no node holds 2: lost %d, want 2", len(c.lost))
	}
	// A resend of order 2 committed again at index 41: rejected by the book.
	resent := nodeLog{Entries: append(append([]appliedEntry(nil), entries...), appliedEntry{Index: 41, Cmd: acks[1].Cmd})}
	if c := checkRestored(acks, three(resent, resent, resent), true); len(c.lost) != 0 || c.err != nil || c.resent != 1 {
		t.Errorf("resend: lost %d, resent %d, %v; want 0, 1, nil", len(c.lost), c.resent, c.err)
	}
	// An order acknowledged at an index that holds another command.
	moved := append([]ack(nil), acks...)
	moved[39].Index = 39
	if c := checkRestored(moved, three(full, full, full), true); len(c.lost) != 1 {
		t.Errorf("wrong index: lost %d, want 1", len(c.lost))
	}
	// The same orders committed in reverse: a client's earlier order
	// comes after its later one, so the book rejects it and it never
	// takes effect, though it sits at the index it was acknowledged at.
	var rev []appliedEntry
	var revAcks []ack
	for i := len(entries) - 1; i >= 0; i-- {
		idx := consensus.Index(len(entries) - i)
		rev = append(rev, appliedEntry{Index: idx, Cmd: entries[i].Cmd})
		revAcks = append(revAcks, ack{Index: idx, Cmd: entries[i].Cmd})
	}
	r := nodeLog{Entries: rev}
	if c := checkRestored(revAcks, three(r, r, r), true); len(c.lost) != 0 || c.err == nil {
		t.Errorf("reordered: lost %d, %v; want 0 and an error", len(c.lost), c.err)
	}
	// Orders below every node's snapshot are reported, not passed.
	snap := nodeLog{Entries: entries[3:], RestoredAt: 3}
	if c := checkRestored(acks, three(snap, snap, snap), true); c.err == nil {
		t.Error("orders below every node's snapshot passed unchecked")
	}
}
