package consensus

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestQuorumSizes(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		if got := quorum(n); got != want {
			t.Errorf("quorum(%d) = %d, want %d", n, got, want)
		}
		// Any two quorums intersect.
		if 2*quorum(n) <= n {
			t.Errorf("two quorums of %d in %d need not intersect", quorum(n), n)
		}
	}
}

// quorumIndexNaive: the largest i such that at least q positions are >= i.
func quorumIndexNaive(acked []uint64, q int) uint64 {
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

func TestQuorumIndexMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	scratch := make([]uint64, 16)
	for iter := 0; iter < 20000; iter++ {
		n := 3 + rng.IntN(5)
		acked := make([]uint64, n)
		for i := range acked {
			acked[i] = uint64(rng.IntN(20))
		}
		orig := slices.Clone(acked)
		q := quorum(n)
		if got, want := quorumIndex(acked, q, scratch), quorumIndexNaive(acked, q); got != want {
			t.Fatalf("quorumIndex(%v, %d) = %d, want %d", acked, q, got, want)
		}
		if !slices.Equal(acked, orig) {
			t.Fatalf("quorumIndex modified its input")
		}
	}
}

func TestProposalNumbersUniquePerReplica(t *testing.T) {
	seen := map[uint64]int{}
	for idx := 0; idx < 5; idx++ {
		r := &Replica{n: 5, selfIdx: idx}
		last := uint64(0)
		for k := 0; k < 200; k++ {
			p := r.nextProposal(last)
			if p <= last {
				t.Fatalf("member %d: nextProposal(%d) = %d not higher", idx, last, p)
			}
			if owner, dup := seen[p]; dup {
				t.Fatalf("proposal %d used by members %d and %d", p, owner, idx)
			}
			seen[p] = idx
			last = p + uint64(k%7) // another replica may have gone higher
		}
	}
}

func TestBatchFraming(t *testing.T) {
	var payload []byte
	cmds := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{7}, 40)}
	for _, c := range cmds {
		payload = binary.LittleEndian.AppendUint32(payload, uint32(len(c)))
		payload = append(payload, c...)
	}
	var got [][]byte
	if !forEachCommand(payload, func(c []byte) { got = append(got, c) }) || len(got) != 3 {
		t.Fatalf("framing decoded %d commands", len(got))
	}
	for i := range cmds {
		if !bytes.Equal(got[i], cmds[i]) {
			t.Fatalf("command %d = %q, want %q", i, got[i], cmds[i])
		}
	}
	if forEachCommand(payload[:len(payload)-1], func([]byte) {}) {
		t.Fatal("truncated framing accepted")
	}
}
