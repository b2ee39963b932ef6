package jepsen

import (
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
)

func op(client int, cmd string, call, ret int64, idx consensus.Index) Op {
	return Op{Client: client, Cmd: []byte(cmd), CallNs: call, RetNs: ret, Acked: true, Index: idx, By: 1}
}

func logOf(entries ...LogEntry) NodeLog {
	l := NodeLog{Entries: entries}
	if n := len(entries); n > 0 {
		l.LastIndex = entries[n-1].Index
	}
	return l
}

func e(i consensus.Index, cmd string) LogEntry { return LogEntry{Index: i, Cmd: []byte(cmd)} }

func TestCheckAcceptsBatchedSlotsAndResends(t *testing.T) {
	// a and b were in flight together and share slot 2; c resent after an
	// unknown outcome commits twice, acknowledged at its second index.
	l := logOf(e(1, "x"), e(2, "a"), e(2, "b"), e(3, "c"), e(4, "c"))
	h := []Op{op(1, "a", 10, 20, 2), op(2, "b", 11, 21, 2), op(1, "c", 30, 50, 4),
		{Client: 2, Cmd: []byte("x"), CallNs: 1}} // abandoned, yet applied
	v := Check(h, map[int]NodeLog{1: l, 2: l}, time.Minute)
	if !v.OK() || v.UnknownApplied != 1 {
		t.Fatalf("verdict %+v, want OK with one abandoned order applied", v)
	}
}

func TestCheckFindsLostOrder(t *testing.T) {
	full := logOf(e(1, "a"), e(2, "b"))
	short := logOf(e(1, "a"), e(2, "z"))
	v := Check([]Op{op(1, "a", 1, 2, 1), op(1, "b", 3, 4, 2)}, map[int]NodeLog{1: full, 2: short}, time.Minute)
	if v.Lost != 1 || v.Divergent == "" || v.OK() {
		t.Fatalf("verdict %+v, want one lost order and divergence", v)
	}
}

func TestCheckFindsBehindNode(t *testing.T) {
	v := Check([]Op{op(1, "a", 1, 2, 1), op(1, "b", 3, 4, 2)},
		map[int]NodeLog{1: logOf(e(1, "a"), e(2, "b")), 2: logOf(e(1, "a"))}, time.Minute)
	if v.Lost != 1 || !strings.Contains(v.LostDetail[0], "applied only to 1") {
		t.Fatalf("verdict %+v, want node 2 behind", v)
	}
}

func TestCheckRejectsRealTimeInversion(t *testing.T) {
	// a was acknowledged before b was submitted, yet b sits first.
	l := logOf(e(1, "b"), e(2, "a"))
	v := Check([]Op{op(1, "a", 1, 2, 2), op(2, "b", 5, 6, 1)}, map[int]NodeLog{1: l}, time.Minute)
	if v.Linearizable || v.OK() {
		t.Fatalf("verdict %+v, want not linearizable", v)
	}
}

func TestCheckFailsWithoutAcknowledgements(t *testing.T) {
	v := Check(nil, map[int]NodeLog{1: logOf()}, time.Minute)
	if v.OK() {
		t.Fatal("a run that acknowledged nothing passed")
	}
}
