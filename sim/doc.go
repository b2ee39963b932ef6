// Package sim is mu's deterministic simulator: a simulated RDMA fabric that
// behaves like rxe, a virtual clock, a discrete-event scheduler, fault
// injection, swarm fault plans and a seed runner for tests.
//
// One goroutine drives everything. Events sit in a heap ordered by (time,
// sequence number); all randomness derives from one seed through PCG streams
// (World.Rand); nothing reads the wall clock, iterates a map or selects on a
// channel, so a seed replays byte for byte (World.Trace).
//
// Nodes are driven, not driving: a Stepper's Step(now) runs when it asked
// to, when a completion for it is queued, and when a remote write or
// compare-and-swap lands in its region. A Node implements rdma.Fabric.
//
// What the fabric reproduces (rxe, kernel 6.1):
//   - per connection, requests land at the target in posting order, and
//     completions arrive in posting order;
//   - a write's data is in the target's region before the initiator sees
//     its completion; a read's data is in the initiator's region before its
//     completion;
//   - a request the target's end of the connection does not allow (e.g. a
//     write after the remote-write flag was removed) completes with
//     StatusRemoteInvalidRequest, and both ends go to ConnError until each
//     is Reset; requests posted on an end in ConnError complete at once with
//     StatusFlushed;
//   - a request to a crashed or cut-off peer is retransmitted and fails
//     with StatusRetryExceeded TransportTimeoutNs after its first
//     unanswered attempt, never sooner; the end then goes to ConnError;
//   - compare-and-swap is atomic at the target; the 64-bit words are
//     little-endian at both ends;
//   - SetRemoteAccess and Reset take effect when they return and charge the
//     caller's CPU (about 80 µs and 540 µs on rxe): the node's clock
//     advances and its next Step is deferred;
//   - a write longer than Config.MTUBytes lands packet by packet in address
//     order, waking the target at each packet, so a poller can see it half
//     written; payloads serialise on each directed link at
//     Config.BandwidthBytesPerSec;
//   - a lossy link costs retransmissions (delay), never data; a request whose
//     answer is lost may have taken effect even though it fails with retry
//     exceeded;
//   - a paused node is not stepped, but its NIC still serves one-sided
//     operations into its region.
//
// Crash and restart: a crashed node's NIC is gone (its posted requests
// vanish without completions; requests to it go unanswered). Restart brings
// it back as a new process: region zeroed unless the crash kept memory, no
// stepper (SetRestartHook installs one), and every connection end on both
// sides in ConnError, so both ends must Reset, as after a fresh bootstrap.
//
// Typical use:
//
//	w := sim.New(seed, sim.DefaultConfig().WithTransportTimeout(2_000_000))
//	for id := rdma.NodeID(1); id <= 3; id++ {
//		w.AddNode(id, 1<<20)
//	}
//	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll})
//	for id := rdma.NodeID(1); id <= 3; id++ {
//		w.SetStepper(id, newReplica(w.Node(id)))
//	}
//	sim.Swarm(w.Rand(1), sim.SwarmOptions{...}).Apply(w)
//	w.RunUntil(func() bool { return done() }, 50_000_000)
//
// Tests sweep seeds with Seeds, which prints the replay command of every
// failing seed, and check client histories recorded in virtual time with
// History.Check (porcupine). World.SetEventHook runs a check after every
// event, for invariants that must hold at every instant.
package sim
