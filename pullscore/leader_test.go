package pullscore

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

func bits(ids ...rdma.NodeID) uint64 {
	var v uint64
	for _, id := range ids {
		v |= 1 << id
	}
	return v
}

func TestChooseLeader(t *testing.T) {
	all3 := bits(1, 2, 3)
	tests := []struct {
		name   string
		states []NodeState
		want   rdma.NodeID
		wantOK bool
	}{
		{"all healthy: lowest", []NodeState{
			{ID: 1, Seen: true, View: all3}, {ID: 2, Seen: true, View: all3}, {ID: 3, Seen: true, View: all3}}, 1, true},
		{"1 dead everywhere: 2", []NodeState{
			{ID: 1}, {ID: 2, Seen: true, View: bits(2, 3)}, {ID: 3, Seen: true, View: bits(2, 3)}}, 2, true},
		{"1-2 cut, seen from 2: C still sees 1, so 1", []NodeState{
			{ID: 1}, {ID: 2, Seen: true, View: bits(2, 3)}, {ID: 3, Seen: true, View: all3}}, 1, true},
		{"1-2 cut, seen from 1: 1", []NodeState{
			{ID: 1, Seen: true, View: bits(1, 3)}, {ID: 2}, {ID: 3, Seen: true, View: all3}}, 1, true},
		{"isolated node: nobody has a majority", []NodeState{
			{ID: 1}, {ID: 2}, {ID: 3, Seen: true, View: bits(3)}}, 0, false},
		{"degraded 1 skipped for healthy 2", []NodeState{
			{ID: 1, Health: Degraded, Seen: true, View: all3}, {ID: 2, Seen: true, View: all3}, {ID: 3, Seen: true, View: all3}}, 2, true},
		{"all degraded: lowest degraded", []NodeState{
			{ID: 1, Health: Degraded, Seen: true, View: all3}, {ID: 2, Health: Degraded, Seen: true, View: all3}, {ID: 3, Health: Degraded, Seen: true, View: all3}}, 1, true},
		{"healthy 3 beats degraded 1 and 2", []NodeState{
			{ID: 1, Health: Degraded, Seen: true, View: all3}, {ID: 2, Health: Degraded, Seen: true, View: all3}, {ID: 3, Seen: true, View: all3}}, 3, true},
		{"fenced never leads", []NodeState{
			{ID: 1, Health: Fenced, Seen: true, View: bits(2, 3)}, {ID: 2, Health: Fenced, Seen: true, View: bits(1, 3)}, {ID: 3, Seen: true, View: bits(1, 2, 3)}}, 3, true},
		{"standby 1 never leads but its view counts", []NodeState{
			{ID: 1, Standby: true, Seen: true, View: all3}, {ID: 2, Seen: true, View: bits(1, 3)}, {ID: 3, Seen: true, View: all3}}, 2, true},
		{"fenced self still votes", []NodeState{
			{ID: 1, Health: Fenced, Seen: true, View: bits(2)}, {ID: 2}, {ID: 3}}, 2, true},
		{"stale view of an unseen node is ignored", []NodeState{
			{ID: 1, View: all3}, {ID: 2, Seen: true, View: bits(2, 3)}, {ID: 3, Seen: true, View: bits(2, 3)}}, 2, true},
		{"5 nodes, 1 seen only by 3: no majority for 1", []NodeState{
			{ID: 1}, {ID: 2, Seen: true, View: bits(2, 3, 4, 5)}, {ID: 3, Seen: true, View: bits(1, 2, 3, 4, 5)},
			{ID: 4, Seen: true, View: bits(2, 3, 4, 5)}, {ID: 5, Seen: true, View: bits(2, 3, 4, 5)}}, 2, true},
		{"5 nodes, 1-2 cut: 1 by majority", []NodeState{
			{ID: 1}, {ID: 2, Seen: true, View: bits(2, 3, 4, 5)}, {ID: 3, Seen: true, View: bits(1, 2, 3, 4, 5)},
			{ID: 4, Seen: true, View: bits(1, 2, 3, 4, 5)}, {ID: 5, Seen: true, View: bits(1, 2, 3, 4, 5)}}, 1, true},
	}
	for _, tt := range tests {
		got, ok := ChooseLeader(tt.states)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: got %d %v, want %d %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

// The standby flag travels in the heartbeat's health byte beside the
// health, and decodes back without disturbing either.
func TestStandbyInHeartbeat(t *testing.T) {
	d := &Detector{health: Degraded, standby: true, counter: 9}
	p := &peer{}
	takeHealth(p, d.heartbeat())
	if p.health != Degraded || !p.standby {
		t.Fatalf("decoded health %v standby %v", p.health, p.standby)
	}
	d.standby = false
	takeHealth(p, d.heartbeat())
	if p.health != Degraded || p.standby {
		t.Fatalf("decoded health %v standby %v", p.health, p.standby)
	}
	if d.heartbeat()&counterMask != 9 {
		t.Fatalf("counter lost: %x", d.heartbeat())
	}
}
