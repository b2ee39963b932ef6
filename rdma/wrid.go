package rdma

// A work-request ID carries its owner in the top 8 bits, so the consensus
// core, the failure detector and the permission manager can share a
// connection's completion queue: the driver routes each completion by
// OwnerOf, and each owner lays out the lower 56 bits as it likes.
const (
	OwnerShift = 56

	OwnerConsensus   uint64 = 1
	OwnerPullscore   uint64 = 2
	OwnerPermissions uint64 = 3
)

// OwnerOf returns the owner tag of a work-request ID.
func OwnerOf(id uint64) uint64 { return id >> OwnerShift }
