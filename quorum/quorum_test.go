package quorum

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMajoritySizes(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4, 15: 8} {
		if got := Majority(n); got != want {
			t.Errorf("Majority(%d) = %d, want %d", n, got, want)
		}
		if 2*Majority(n) <= n {
			t.Errorf("two majorities of %d in %d need not intersect", Majority(n), n)
		}
	}
}

// indexNaive: the largest i such that at least q positions are >= i.
func indexNaive(acked []uint64, q int) uint64 {
	best := uint64(0)
	for _, cand := range acked {
		n := 0
		for _, a := range acked {
			if a >= cand {
				n++
			}
		}
		if n >= q && cand > best {
			best = cand
		}
	}
	return best
}

func TestIndexMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	scratch := make([]uint64, 16)
	for iter := 0; iter < 20000; iter++ {
		n := 1 + rng.IntN(15)
		acked := make([]uint64, n)
		for i := range acked {
			acked[i] = uint64(rng.IntN(20))
		}
		orig := slices.Clone(acked)
		q := Majority(n)
		if got, want := Index(acked, q, scratch), indexNaive(acked, q); got != want {
			t.Fatalf("Index(%v, %d) = %d, want %d", acked, q, got, want)
		}
		if !slices.Equal(acked, orig) {
			t.Fatalf("Index modified its input")
		}
	}
}

func TestIndexOutOfRange(t *testing.T) {
	scratch := make([]uint64, 4)
	for _, q := range []int{-1, 0, 4} {
		if got := Index([]uint64{5, 6, 7}, q, scratch); got != 0 {
			t.Errorf("Index(q=%d) = %d, want 0", q, got)
		}
	}
}

func TestIndexAllocatesNothing(t *testing.T) {
	acked, scratch := []uint64{3, 9, 4, 7, 1}, make([]uint64, 5)
	if n := testing.AllocsPerRun(100, func() { Index(acked, 3, scratch) }); n != 0 {
		t.Fatalf("Index allocates %.0f times per call", n)
	}
}
