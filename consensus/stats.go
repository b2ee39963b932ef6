package consensus

// Stats are counters for monitoring; read them with Replica.Stats.
type Stats struct {
	Applied           uint64 // entries (slots) applied
	Commands          uint64 // commands applied
	Commit            uint64
	LeaderTerms       uint64 // times this replica became leader
	Elections         uint64 // leader changes started
	CorruptSlots      uint64 // slots that failed their checksum where they had to be whole
	OpErrors          uint64 // failed completions
	CatchUps          uint64 // bulk catch-ups started
	SnapshotsSent     uint64
	SnapshotsRestored uint64
	SnapshotFailures  uint64 // snapshots that failed or exceeded SnapshotMaxBytes
	ReclaimStalls     uint64 // Steps where the ring was full
	CommitWords       uint64 // idle-leader commit words written
	ConfChanges       uint64 // configuration entries applied
	CommitGaps        uint64 // Steps where a committed slot had not arrived whole
	DamagedSlots      uint64 // slots read in a recovery that were neither whole nor provably empty
	Deposed           uint64 // times this leader stepped down on seeing a higher proposal
	StaleFlushes      uint64 // connections reset to drop writes of an earlier term
	Recatchups        uint64 // followers re-caught-up after their applied position stalled
	Probes            uint64 // empty entries an idle leader wrote as probes
	Reads             uint64 // reads answered by the driver (ReadIndex, SubmitRead)
	LeaseReads        uint64 // of them, answered under the lease without a confirmation round
	TakeOvers         uint64 // leader changes this replica started on a handover (transfer target)

	// Durability (async and sync modes).
	Persisted         uint64 // highest index this replica holds durably under the current proposal
	JournalRecords    uint64 // records in the journal (loaded and appended)
	LossWindowEntries uint64 // committed entries not yet durable here: what a total failure now would lose (async)
	LossWindowNs      int64  // how long the oldest of them has waited
	StorageErrors     uint64 // storage failures (each fences the replica; see StorageErr)
	JournalDamaged    uint64 // 1 if the journal loaded at start was damaged and discarded
	RestoredIndex     uint64 // applied index restored from the journal at start
}

// Stats returns the counters as of the end of the latest Step. Safe from
// any goroutine.
func (r *Replica) Stats() Stats {
	r.statsMu.Lock()
	s := r.statsPub
	r.statsMu.Unlock()
	return s
}

// publishStats copies the driver's counters for Stats: one uncontended
// lock and a copy per Step, no allocation.
func (r *Replica) publishStats() {
	r.statsMu.Lock()
	r.statsPub = r.stats
	r.statsPub.Commit = r.commit
	r.durabilityStats(&r.statsPub)
	r.statsMu.Unlock()
}
