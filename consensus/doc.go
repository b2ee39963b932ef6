// Package consensus is Mu replication (OSDI 2020) over one-sided RDMA: the
// log that lives in each replica's registered region, the leader's fast path
// (one RDMA write per follower, commit on a majority of completions counting
// the leader), commit-index propagation for an idle leader, leader change by
// a Paxos prepare over RDMA reads and writes once a majority has granted write
// permission, catch-up of lagging followers by bulk writes, a circular log
// reclaimed from the slowest live follower's applied position, snapshot
// restore for a follower that fell off the log, and apply in log order
// exactly once on every replica.
//
// The core is driven: a Replica owns no goroutine and never reads the wall
// clock. Its owner calls Step(now) whenever the returned wake-up time arrives,
// a completion is due, or a peer may have written the region. The simulator
// (package sim) drives it in virtual time; Run drives it in real time on a
// locked OS thread by busy-polling (or spinning then yielding on small hosts).
//
// Region layout (all offsets cache-line aligned, identical on every replica
// so a leader can copy its own slot to the same offset in a follower):
//
//	header     min_proposal, first_undecided (FUO), commit word, flags
//	heartbeat  pull-score counters and health words (package pullscore)
//	perms      permission request/ack words (package permissions)
//	scratch    detector read scratch; per-peer staging words and read windows
//	snapshot   snapshot header + bytes pushed to a follower that fell off the log
//	log        LogSlots slots of {index, accepted proposal, commit hint, len,
//	           payload, crc32c, canary}
//
// A slot is complete when its canary (which encodes the slot's index) is set
// and its crc32c (Castagnoli) over header and payload matches. A slot that is
// known committed but fails its checksum is never applied: the replica
// counts it, reports it through Config.OnCorruption and fences itself.
package consensus
