package consensus

import (
	"testing"
)

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
