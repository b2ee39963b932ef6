package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/hwmon"
	"github.com/rdmaconsensus/mu/metrics"
	"github.com/rdmaconsensus/mu/wal"
)

// serveNodeMetrics serves the replica's and the hardware monitor's (mon may
// be nil) metrics at cfg.MetricsAddress until ctx ends, and returns the
// collector the proposal path feeds; nil when the file sets no address.
// With credentials the listener runs the cluster's mutual TLS like the
// others: a scraper presents a certificate of the cluster (a client one
// from `mu certs issue --client`).
func serveNodeMetrics(ctx context.Context, cfg Config, creds *clustertls.Credentials, r metrics.Replica, mon *hwmon.Monitor, logger *log.Logger) (*metrics.Collector, error) {
	if cfg.MetricsAddress == "" {
		return nil, nil
	}
	c := newNodeCollector(cfg, r)
	reg, err := metrics.Registry(c, mon)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddress)
	if err != nil {
		return nil, fmt.Errorf("metrics_address: %w", err)
	}
	scheme := "http"
	if creds != nil {
		ln, scheme = tls.NewListener(ln, creds.ServerConfig(nil)), "https"
	}
	go func() {
		if err := metrics.Serve(ctx, ln, reg); err != nil {
			logger.Printf("metrics: %v", err)
		}
	}()
	logger.Printf("metrics at %s://%s/metrics", scheme, ln.Addr())
	return c, nil
}

// newNodeCollector is the replica's collector, with the journal's gauges
// when cfg's durability keeps one.
func newNodeCollector(cfg Config, r metrics.Replica) *metrics.Collector {
	if d, err := consensus.ParseDurability(cfg.Durability); err == nil && d != consensus.DurabilityMemory {
		return metrics.New(r, journalGauges{r})
	}
	return metrics.New(r, nil)
}

// journalGauges is the journal as the metrics show it, read from the
// replica's Stats (safe from any goroutine, and still valid while the
// storage closes): the log index this replica holds on stable storage and
// the committed entries not yet durable here, in log entries rather than
// the write-ahead log's record numbers.
type journalGauges struct{ r metrics.Replica }

func (j journalGauges) Durable() uint64 { return j.r.Stats().Persisted }

func (j journalGauges) LossWindow() wal.LossWindow {
	s := j.r.Stats()
	return wal.LossWindow{Entries: s.LossWindowEntries, AgeNs: s.LossWindowNs}
}

// observeCommit feeds the status's recent commit latencies and the
// commit-latency histogram, when metrics are served.
func (s *nodeServer) observeCommit(d time.Duration) {
	s.commits.record(time.Now(), d)
	if c := s.metrics.Load(); c != nil {
		c.ObserveCommit(d)
	}
}
