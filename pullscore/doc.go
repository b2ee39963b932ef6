// Package pullscore is mu's first failure-detection layer (design §4): every
// node increments a heartbeat counter in its own registered region, and
// every node RDMA-reads every peer's heartbeat once per period, and also
// pushes its own into every peer's inbox (an unsignaled write), so a read
// stuck in the network's tail does not stall a peer's view of it. A peer's
// score (0..ScoreMax) falls with its staleness (time since its counter was
// last seen moving, less the time this node itself was descheduled) and is
// restored by a fresh beat; the score's hysteresis turns it into an
// alive/failed verdict (stale.go). The period follows the measured read
// round trip, and the failure bound the measured staleness live peers
// reach between fresh beats (see Config): short on dedicated cores, long
// on a host that deschedules the nodes. One observer's short bound moves no leadership: Leader needs a
// majority's views (the second opinion).
// Health (healthy, degraded, fenced) travels in the same heartbeat word, so
// a peer learns it with the read that proves the node alive. From the
// verdicts, Leader picks the lowest-id healthy node that a majority sees
// alive: each node also publishes its own alive set next to its counter,
// so that under partial connectivity (A–B cut, both reach C) every node,
// A and B included, names the same leader instead of both naming
// themselves (see ChooseLeader).
//
// The detector is driven and does no I/O of its own: no goroutines, no wall
// clock. The owner calls Step(now), which posts reads on the background
// plane and stores into the local region, and routes completions whose
// work-request ID carries Tag in its top 8 bits to OnCompletion.
//
// Region layout (the same offsets on every node; the owner of the region
// layout chooses them): at hbOffset, AreaBytes() bytes of the own heartbeat;
// at scratchOffset, ScratchBytes(len(peers)) bytes: where reads of peers
// land, then the inbox where peers push theirs (one area per peer each, in
// sorted peer order; a node pushes to its rank in the target's peer list).
// The heartbeat is two 8-byte words, each stored atomically and read
// whole by the NIC: word 0 = health<<56 | counter (56 bits); word 1 =
// bitmap of the node IDs this node sees alive (bit id), which lets every
// node agree on a leader under partial connectivity. All nodes of a cluster
// share byte order, and node IDs are below MaxNodeID.
//
// CPU budget: Step must run at least every BeatIntervalNs (10 µs by
// default; Step's return value says when) and should run within a few
// microseconds of each sample time, because a late sample delays every
// verdict by as much. One sample costs one posted read and one posted push
// per peer (on rxe with 4 peers, ~30 µs periods: ~270 000 posts/s, each a
// single Post crossing) plus a few loads and stores; Step allocates nothing. The consensus loop that
// polls completions calls Step on every iteration, which keeps the counter
// moving exactly as long as that loop is alive — the point of pull-score:
// a stuck loop stops its own heartbeat.
package pullscore
