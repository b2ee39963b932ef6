// Package quorum holds the majority arithmetic every part of mu counts with:
// the consensus core (commit and recovery), the permission manager (grants)
// and the failure detector (second opinions) must agree on it, so it is
// defined once here.
package quorum

// Majority is the smallest majority of n members: any two sets of that size
// drawn from the same n members share at least one member.
func Majority(n int) int { return n/2 + 1 }

// Index returns the highest index that at least q of the acknowledged
// positions have reached: the q-th largest value, or 0 when q is not in
// 1..len(acked). It sorts a copy in scratch (len(scratch) >= len(acked)) so
// the commit path allocates nothing.
func Index(acked []uint64, q int, scratch []uint64) uint64 {
	if q <= 0 || q > len(acked) {
		return 0
	}
	s := scratch[:len(acked)]
	copy(s, acked)
	// Insertion sort, descending: a group has at most 15 members.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] > s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[q-1]
}
