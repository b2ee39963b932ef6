// Package node runs one mu replica for a program that links it: the
// whole life of a member of a replica group over real RDMA, behind one
// Start and one Close.
//
// Start discovers the RDMA port (Config.Device), opens the verbs fabric
// with a region sized for Config.Consensus, exchanges queue-pair
// endpoints with every peer over the TCP bootstrap (inside mutual TLS
// with Config.Credentials), and once a majority is connected builds the
// consensus replica and starts its driver (Config.Poll). Config.Fabric
// replaces all of that with a connected fabric of the caller's, such as
// the in-process one InprocFabrics builds, so the same program runs in
// tests without RDMA.
//
// Propose replicates a command and returns the state machine's result
// for it (consensus.ResultApplier); Barrier makes a read of the state
// machine linearizable. Status is safe from any goroutine. Typed events
// (LeaderChange with the steps of the change, FirstCommit, Fenced,
// FailSlow, Corruption) reach Config.OnEvent on a goroutine of the
// node's; Config.Logger receives its life events.
//
// Close stops the driver and waits for it, fails what is queued or in
// flight with ErrClosed, stops the bootstrap and only then releases the
// registered memory. It is idempotent; every method is safe before,
// during and after it.
//
// A node whose driver busy-polls (PollSpin) owns a Go processor; Start
// refuses one that would leave the program none (GOMAXPROCS must be at
// least the spinning nodes of the process + 1), since proposals would
// otherwise stall without an error.
package node
