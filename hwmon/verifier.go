package hwmon

import "sync/atomic"

// Verifier counts log checksum verifications, named after Consul raft-wal's
// verifier: a read failure means what was read back from the log differs from
// what was written (storage corruption); a write failure means a follower's
// checksum differs from the leader's (in-flight corruption). Any failure
// fences the node. Safe for concurrent use; the methods do not allocate.
type Verifier struct {
	reads         atomic.Uint64
	readFailures  atomic.Uint64
	writes        atomic.Uint64
	writeFailures atomic.Uint64
}

// RecordRead counts one verification of data read back from the log.
func (v *Verifier) RecordRead(ok bool) {
	v.reads.Add(1)
	if !ok {
		v.readFailures.Add(1)
	}
}

// RecordWrite counts one comparison of a follower's checksum with the leader's.
func (v *Verifier) RecordWrite(ok bool) {
	v.writes.Add(1)
	if !ok {
		v.writeFailures.Add(1)
	}
}

// Counts returns the cumulative counters.
func (v *Verifier) Counts() ChecksumCounts {
	return ChecksumCounts{
		ReadsTotal:    v.reads.Load(),
		ReadFailures:  v.readFailures.Load(),
		WritesTotal:   v.writes.Load(),
		WriteFailures: v.writeFailures.Load(),
	}
}
