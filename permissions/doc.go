// Package permissions decides who may write this node's log, and asks the
// other nodes for that right when this node wants to lead (Mu's permission
// switch, design §3 and §2).
//
// The leader permission is the remote-write flag of each node's
// replication-plane connection to the leader: a node that grants r sets
// AccessRemoteRead|AccessRemoteWrite on its connection to r and only
// AccessRemoteRead on every other one, so a deposed leader's next write
// fails at the writer with StatusRemoteInvalidRequest. The fast path is
// Conn.SetRemoteAccess (ibv_modify_qp on the access flags: 7-8 µs at p50
// on rxe in the emulated VM, up to ~190 µs at p99); when it fails, or the
// connection is in ERROR, the fallback is Conn.Reset with the intended
// access (~540 µs). Type 2 memory windows bound to the grantee's queue pair
// were measured as the alternative (cgo/verbs BenchmarkPermissionSwitch):
// about 3x dearer on rxe and no stronger against spoofed packets, so the
// access flags stay (docs/security.md).
// Every switch is timed with the fabric clock and counted in Stats, and
// optionally reported to Config.OnSwitch.
//
// Requests and acks travel on the background plane, which is never
// revoked, as single 8-byte RDMA writes (atomic at the target) into each
// node's permission area. See AreaBytes for the layout.
//
// A node that restarts starts with nobody holding its permission (it does
// not re-serve the request words it finds in its area, which may be stale).
// The leader, seeing its writes to that node fail, calls Request again; the
// peers that already grant it answer the new epoch without touching a
// connection, so a re-request costs one round trip.
//
// The Manager is driven and does no I/O of its own: the owner calls
// Step(now) and routes completions whose work-request ID carries Tag in its
// top 8 bits to OnCompletion.
//
// CPU budget: Step must run often enough to notice a request written into
// the local area: a request waits on average half the gap between Steps
// before it is served, so Step should run every few microseconds (Step
// asks for PollIntervalNs, 5 µs by default; the consensus loop calls it on
// every iteration). A Step with nothing to do is n 8-byte loads and n
// connection-state checks; serving a request costs one SetRemoteAccess per
// peer (tens of µs each on rxe) and one posted write. Step allocates
// nothing.
package permissions
