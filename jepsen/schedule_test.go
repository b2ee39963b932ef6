package jepsen

import (
	"reflect"
	"testing"
	"time"
)

func TestScheduleIsReproducible(t *testing.T) {
	o := DefaultScheduleOptions(42, 10*time.Minute, 5)
	a, err := NewSchedule(o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSchedule(o)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different schedules")
	}
	o.Seed = 43
	c, _ := NewSchedule(o)
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds, same schedule")
	}
	var total time.Duration
	seen := map[Kind]bool{}
	for _, s := range a {
		total += s.Hold + s.Quiet
		seen[s.Kind] = true
		if s.A < 1 || s.A > 5 || s.B < 0 || s.B > 5 || s.A == s.B {
			t.Fatalf("step %v names nodes outside 1..5 or the same node twice", s)
		}
		if s.Hold < o.HoldMin || s.Hold > o.HoldMax || s.Quiet < o.QuietMin || s.Quiet > o.QuietMax {
			t.Fatalf("step %v outside the time bounds", s)
		}
	}
	if total < o.Duration {
		t.Fatalf("schedule covers %v, want at least %v", total, o.Duration)
	}
	if len(seen) != len(AllKinds) {
		t.Fatalf("10 minutes drew %d of %d kinds", len(seen), len(AllKinds))
	}
}

func TestScheduleKindsFilterAndErrors(t *testing.T) {
	o := DefaultScheduleOptions(1, time.Minute, 3)
	o.Kinds = []Kind{KillLeader}
	s, err := NewSchedule(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range s {
		if st.Kind != KillLeader {
			t.Fatalf("kind %s drawn, only kill-leader allowed", st.Kind)
		}
	}
	o.Kinds = []Kind{"nope"}
	if _, err := NewSchedule(o); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := NewSchedule(DefaultScheduleOptions(1, time.Minute, 2)); err == nil {
		t.Fatal("2 nodes accepted")
	}
}
