package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
)

func TestDemoInprocKeepsEveryAcknowledgedOrder(t *testing.T) {
	g, err := newInprocGroup(3, PollSpinYield)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	res, err := runDemo(context.Background(), g, demoOptions{before: 300, after: 200, seed: 7, timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.newLeader == res.oldLeader || res.failoverNs <= 0 {
		t.Fatalf("old leader %d, new leader %d, failover %d ns", res.oldLeader, res.newLeader, res.failoverNs)
	}
	if res.acked != 500 || res.commands < 500 {
		t.Fatalf("acked %d, survivors applied %d commands", res.acked, res.commands)
	}
	var out strings.Builder
	printDemo(&out, g, demoOptions{}, res)
	if !strings.Contains(out.String(), "OK") {
		t.Errorf("report lacks the verdict:\n%s", out.String())
	}
}

// The check must be able to fail: a lost acknowledged command and
// diverging logs are both reported.
func TestVerifyLogsDetectsLossAndDivergence(t *testing.T) {
	e := func(i consensus.Index, s string) appliedEntry { return appliedEntry{Index: i, Cmd: []byte(s)} }
	acked := []ack{{Index: 1, Cmd: []byte("a"), By: 1}, {Index: 2, Cmd: []byte("b"), By: 1}}
	good := nodeLog{Entries: []appliedEntry{e(1, "a"), e(2, "b")}, LastIndex: 2, StateDigest: 9}
	if err := verifyLogs(acked, map[rdma.NodeID]nodeLog{2: good, 3: good}); err != nil {
		t.Fatalf("identical complete logs: %v", err)
	}
	lost := nodeLog{Entries: []appliedEntry{e(1, "a")}, LastIndex: 2, StateDigest: 9}
	if err := verifyLogs(acked, map[rdma.NodeID]nodeLog{2: good, 3: lost}); err == nil || !strings.Contains(err.Error(), "replica 3 lacks 1") {
		t.Errorf("lost command: err = %v", err)
	}
	other := nodeLog{Entries: []appliedEntry{e(1, "a"), e(2, "b"), e(3, "x")}, LastIndex: 2, StateDigest: 9}
	if err := verifyLogs(acked, map[rdma.NodeID]nodeLog{2: good, 3: other}); err == nil || !strings.Contains(err.Error(), "applied logs differ") {
		t.Errorf("diverging logs: err = %v", err)
	}
	book := good
	book.StateDigest = 10
	if err := verifyLogs(acked, map[rdma.NodeID]nodeLog{2: good, 3: book}); err == nil || !strings.Contains(err.Error(), "books differ") {
		t.Errorf("diverging books: err = %v", err)
	}
	// A replica restored from a snapshot is checked from its restore point.
	restored := nodeLog{Entries: []appliedEntry{e(2, "b")}, RestoredAt: 1, LastIndex: 2, StateDigest: 9}
	if err := verifyLogs(acked, map[rdma.NodeID]nodeLog{2: good, 3: restored}); err != nil {
		t.Errorf("restored replica: %v", err)
	}
	// So is one whose bounded applied log dropped its oldest entries.
	trimmed := nodeLog{Entries: []appliedEntry{e(2, "b")}, TrimmedAt: 1, LastIndex: 2, StateDigest: 9}
	if err := verifyLogs(acked, map[rdma.NodeID]nodeLog{2: good, 3: trimmed}); err != nil {
		t.Errorf("trimmed replica: %v", err)
	}
	trimmed.Entries = nil
	trimmed.TrimmedAt = 0
	if err := verifyLogs(acked, map[rdma.NodeID]nodeLog{2: good, 3: trimmed}); err == nil {
		t.Errorf("a log that lost entries without saying so passed")
	}
}
