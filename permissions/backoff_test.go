package permissions

import "testing"

func TestBackoffDoublesWhileBreakingAndResets(t *testing.T) {
	const base = 1_000
	var b backoff
	if !b.ready(0) {
		t.Fatal("first reset not immediate")
	}
	now := int64(0)
	var gaps []int64
	for i := 0; i < 9; i++ {
		b.record(now, base)
		gaps = append(gaps, b.gapNs)
		if b.ready(b.nextNs-1) || !b.ready(b.nextNs) {
			t.Fatalf("ready around next %d wrong", b.nextNs)
		}
		now = b.nextNs // the connection broke again at once
	}
	want := []int64{1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 64_000, 64_000}
	for i := range want {
		if gaps[i] != want[i] {
			t.Fatalf("gaps %v, want %v", gaps, want)
		}
	}
	// A quiet spell longer than twice the gap starts from the base again.
	b.record(now+200_000, base)
	if b.gapNs != base {
		t.Fatalf("after a quiet spell gap %d, want %d", b.gapNs, base)
	}
}
