// Package metrics exports a replica's consensus state, and the loss window
// of its write-ahead log, as Prometheus metrics, and serves a registry over
// HTTP. It reads consensus.Stats and the replica's accessors at scrape time,
// so the protocol core records nothing for it and imports neither Prometheus
// nor net/http. The hardware monitor's metrics come from hwmon (Register);
// docs/metrics.md lists every metric with its meaning and unit.
package metrics
