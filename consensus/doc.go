// Package consensus is Mu replication (OSDI 2020) over one-sided RDMA: the
// log that lives in each replica's registered region, the leader's fast path
// (one RDMA write per follower, commit on a majority of completions counting
// the leader), commit-index propagation for an idle leader, leader change by
// a Paxos prepare over RDMA reads and writes once a majority has granted write
// permission, catch-up of lagging followers by writes of each slot's encoded
// bytes, at most RecoveryReadBytes in flight per follower, a circular log
// reclaimed from the slowest live follower's applied position, snapshot
// restore for a follower that fell off the log, and apply in log order
// exactly once on every replica.
//
// # Driving
//
// The core is driven: a Replica owns no goroutine and never reads the wall
// clock. Its owner calls Step(now) whenever the returned wake-up time arrives,
// a completion is due, or a peer may have written the region. The simulator
// (package sim) drives it in virtual time; Run drives it in real time on a
// locked OS thread by busy-polling (DriveBusyPoll) or by yielding between
// Steps on small hosts (DriveSpinYield); busy-polling drivers that would
// leave the program no spare Go processor are refused (CheckBusyPoll).
// Propose blocks until commit; Submit with SetResultHandler is the
// non-blocking form. Both copy the payload into a preallocated ring
// drained by Step: no allocation per proposal. ProposeResult also returns
// what the state machine computed for the command, when it implements
// ResultApplier (whose doc defines delivery across leader change and
// snapshot restore).
//
// # Reads
//
// ReadIndex, Read and LeaseRead (SubmitRead on the driving goroutine)
// serve linearizable reads without a log entry: the leader confirms it
// still leads with one round of header reads to a majority issued after
// the read arrived (no newer candidate prepared them), or, with
// Config.ReadLeaseNs, answers locally while its lease holds; every
// candidate waits ReadLeaseNs after its prepare before it leads, so a
// lease ends before a newer leader commits. docs/reads.md has the
// argument and the clock-rate assumption.
//
// # Leadership transfer
//
// TransferLeadership (StartTransfer on the driving goroutine) hands
// leadership to a chosen member: the leader stops proposing, waits until
// the target holds every entry, and writes its proposal into the
// target's handover word; the target then starts a leader change at once,
// and the sticky rule keeps it leading although the detector may prefer
// another node. docs/membership.md has the design and the measured
// window.
//
// # Lifecycle
//
// Build the fabric and connect it first (New needs a replication
// connection to every peer), then New, then Run on a goroutine of its own.
// Close stops the replica: it waits for Run (and any Step) to return,
// fails what is queued or in flight with ErrClosed, and is idempotent;
// after it, proposals fail with ErrClosed and Step does nothing. Close the
// fabric only after Close has returned: a driver still stepping would
// touch released memory. Stats, IsLeader, CommitIndex, Propose and the
// other accessors are safe from any goroutine at any time.
//
// # Region layout
//
// All offsets are cache-line aligned and identical on every replica, so a
// leader copies its own slot to the same offset in a follower:
//
//	header     min_proposal, first undecided index (FUO = applied+1), commit
//	           word, catch-up mark (the leader's proposal), flags
//	           (rejoining), leader beat, persisted index and its proposal
//	heartbeat  pull-score counter and health word (package pullscore)
//	perms      permission request/ack words (package permissions)
//	scratch    detector read scratch; per-peer staging words (the local
//	           source of small writes) and read windows
//	snapshot   snapshot header + bytes pushed to a follower off the log
//	log        LogSlots slots of {index, accepted proposal, commit hint, len,
//	           payload, crc32c, canary}
//
// A slot is complete when its canary (which encodes the slot's index, so a
// previous occupant of the ring position never passes) is set and its
// crc32c (Castagnoli) over header and payload matches. A slot known
// committed that fails its checksum is never applied: the replica counts
// it, reports it through Config.OnCorruption and fences itself.
//
// # Leadership
//
// The pull-score detector names the leader. A named replica asks every peer
// for write permission (package permissions), and once a majority granted
// it reads min_proposal from a majority, writes a higher proposal number
// unique to it (member index + 1 + k·n), reads the undecided slots from the
// same majority and adopts, slot by slot, the value with the highest
// accepted proposal, rewriting it under its own proposal. Each recovery
// read is at most Config.RecoveryReadBytes per peer, so the detector's
// heartbeat reads queued behind it on the same link keep their deadline. A leader stops as
// soon as its own log is granted to someone else, and gives up (advertising
// itself degraded for a while) when its writes stop reaching a majority.
// Leadership is sticky: a follower the detector names does not take over a
// holder of its log that is alive, healthy and still writing its beat word,
// which keeps a healthy leader in place under partial connectivity.
//
// Writes that outlive a change of leader are the hazard of one-sided
// replication: a write of an earlier term landing after its target has
// accepted newer entries would overwrite them. Two rules close it. Every
// log write is at most Config.MaxWriteBytes (the path MTU), so the target's
// access flags are checked for the whole write when it lands, and a
// revoked writer's late write is refused rather than landing in part
// (snapshot bytes may be longer: a late part there fails the snapshot's
// checksum and the leader resends). And
// a replica that starts a leader change first resets its connections that
// still have writes of its own in flight, since asking for permission
// re-opens its peers' logs to it.
//
// A replica restarted without its log (Config.Rejoining) neither leads nor
// counts in a recovery quorum until a leader has caught it up: an acceptor
// that forgot what it accepted must not vote.
//
// # Durability
//
// Config.Durability selects memory (the default: the log lives only in
// the region), async or sync. In the last two each replica journals what
// lands in its log to Config.Storage (NewWALStorage over a data
// directory) and publishes a persisted index with the proposal it holds
// under; in sync mode the leader commits an index once a majority,
// itself included, holds it durably, so every acknowledged entry
// survives the loss of every replica's memory; a candidate counts a
// peer's prepare only once the peer publishes that promise as durable (a
// promise a power loss could take back must not count). New loads the
// journal: the state machine and the log are restored, and the replica
// votes only with an intact journal that holds a voter record (written on
// creating a cluster with Config.NewCluster, or once a rejoining
// replica's catch-up is journaled); an empty or damaged journal makes it
// rejoin. A storage error fences the replica (StorageErr).
// docs/durability.md has the design, the API for a node and the measured
// cost.
//
// # Health
//
// Layer 2 (probes): an idle leader commits an empty entry every
// Config.ProbeIntervalNs (10 ms by default) and times every fast-path slot
// write from post to completion on Step's clock (catch-up ranges are not
// timed: their latency is queueing). Each follower's latency goes into a
// failslow.Tracker (hwmon.FailSlow is the same), fail-slow at 5x and
// critical at 10x its own baseline p99: Replica.FollowerLatency reports it, OnWriteLatency and
// OnProbeCommit export every sample, and Replica.ProbeSummary (passed with
// hwmon.WithProbeSummary) gives the arbiter the probe commit p99 for its
// probe-latency row. A slow follower does not slow commits while a
// majority without it is fast: the leader commits on the first majority.
//
// Layer 3 (hardware): the arbiter's verdict enters through Fence and
// SetDegraded (hwmon's Verdict.Apply calls them), so consensus imports
// none of the collectors. Failed fences: the heartbeat stops and the
// health word says Fenced, so peers elect another leader on their next
// read; leadership is given up and proposals fail with ErrFenced.
// Degraded advertises Degraded: a degraded leader steps down once its
// detector names a healthy live peer, which takes over, and keeps
// replicating as a follower. A checksum failure of the replica's own log
// fences it as well and counts as a read failure in Config.Verifier (a
// ChecksumRecorder such as *hwmon.Verifier), which the arbiter's
// log-checksum row reads.
package consensus
