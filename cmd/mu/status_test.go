package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

func TestStatusTableNamesLeaderLatencyAndLostNodes(t *testing.T) {
	leader := nodeStatus{ID: 2, Leader: 2, LeaderKnown: true, IsLeader: true, Commit: 90,
		CommitP50Ns: 35_200, CommitP99Ns: 1_060_000, CommitSamples: 400,
		FailSlow: map[rdma.NodeID]string{3: "fail-slow: write p99 2ms"}}
	follower := nodeStatus{ID: 3, Leader: 2, LeaderKnown: true, Commit: 88}
	stale := nodeStatus{ID: 4, Leader: 1, LeaderKnown: true, Commit: 10}
	answers := []statusAnswer{
		{addr: "h1:1", err: errors.New("connection refused")},
		{addr: "h2:1", st: leader}, {addr: "h3:1", st: follower}, {addr: "h4:1", st: stale},
	}
	seen := map[string]lastAnswer{"h1:1": {st: nodeStatus{ID: 1, IsLeader: true}, at: time.Date(2026, 1, 1, 9, 30, 0, 0, time.Local)}}
	var out strings.Builder
	if down := renderStatus(&out, answers, seen); down != 1 {
		t.Errorf("%d down, want 1", down)
	}
	got := out.String()
	for _, want := range []string{
		"group: 3 of 4 nodes answer  leader 2 (named by 2 of 3 answering)  commit 90",
		"commit p50 35.2µs p99 1.06ms (node 2, 400 proposals in 10s)",
		"fail-slow followers: 3",
		"35.2µs/1.06ms",
		"h1:1: no answer (leader when last seen at 09:30:00.000): connection refused",
		"node 2: follower 3 fail-slow",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(strings.Split(got, "\n")[2], "1  ") {
		t.Errorf("the lost node's row does not keep its id:\n%s", got)
	}
	none := groupSummary([]statusAnswer{{addr: "a", st: follower}})
	if !strings.Contains(none, "commit p50/p99 -") || !strings.Contains(none, "leader 2 (named by 1 of 1") {
		t.Errorf("summary without a leader answering: %s", none)
	}
}

func TestShortLatency(t *testing.T) {
	for ns, want := range map[int64]string{1_500: "1.5µs", 35_240: "35.2µs", 185_000: "185µs", 1_060_000: "1.06ms", 2_500_000_000: "2.5s", 10_000: "10µs", 1_000_000: "1ms"} {
		if got := shortLatency(ns); got != want {
			t.Errorf("%d ns: %s, want %s", ns, got, want)
		}
	}
}
