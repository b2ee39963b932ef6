// Package hwmon watches the hardware under a replica and decides whether the
// replica should keep serving.
//
// Three kinds of input feed one pure decision function:
//
//   - collectors read what the machine says about itself: EDAC sysfs and
//     rasdaemon's database (memory ECC), smartctl JSON (disk health),
//     /sys/block/*/stat deltas and an optional eBPF latency histogram (disk
//     latency), RDMA port counters, netdev errors and carrier changes
//     (rtnetlink), CPU thermal throttling;
//   - FailSlow holds per-follower write completion latency in HDR
//     histograms and flags a follower whose p99 has drifted from its own
//     baseline (consensus feeds its own tracker on the fabric's clock and
//     hands the Monitor a ProbeSummary through WithProbeSummary);
//   - Verifier counts log checksum verifications and failures.
//
// Arbiter turns a timestamped Snapshot of all of them into a Report
// (Healthy, Degraded or Failed, with reasons) using the thresholds of the
// design's decision table. It does no I/O and reads no clock, so tests drive
// every row with fixtures. Monitor runs the collectors on a cadence (off the
// replication hot path) and publishes the latest Report; CollectOnce is the
// one-shot form behind `mu health`.
//
// A signal that cannot be read on this machine is never treated as healthy
// silently: it appears in Report.Signals as unavailable, with the reason.
package hwmon
