package backoff

import "testing"

func TestBackoffDoublesOnlyForQuickBreaks(t *testing.T) {
	const base = 1_000
	var b Backoff
	if !b.Broken(0) {
		t.Fatal("first reset not immediate")
	}
	b.Record(0, base)
	now := int64(0)
	var gaps []int64
	for i := 0; i < 8; i++ {
		// Broken again right after the Reset: must wait out the gap.
		if b.Broken(now+10) && b.gapNs > 10 {
			t.Fatalf("reset allowed 10 ns after the last one with gap %d", b.gapNs)
		}
		now = b.nextNs
		if !b.Broken(now) {
			t.Fatalf("reset not allowed at next %d", now)
		}
		b.Record(now, base)
		gaps = append(gaps, b.gapNs)
	}
	want := []int64{2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 64_000, 64_000}
	for i := range want {
		if gaps[i] != want[i] {
			t.Fatalf("gaps %v, want %v", gaps, want)
		}
	}
	// Up for longer than the base before breaking (a transport timeout):
	// the next gap is the base again, and the Reset is immediate.
	now += 200_000
	if !b.Broken(now) {
		t.Fatal("reset after a long healthy spell not immediate")
	}
	b.Record(now, base)
	if b.gapNs != base {
		t.Fatalf("after a slow break gap %d, want %d", b.gapNs, base)
	}
}
