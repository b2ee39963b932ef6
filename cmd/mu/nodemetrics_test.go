package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/metrics"
	"github.com/rdmaconsensus/mu/rdma"
)

type idleReplica struct{}

func (idleReplica) Self() rdma.NodeID             { return 1 }
func (idleReplica) Stats() consensus.Stats        { return consensus.Stats{} }
func (idleReplica) CommitIndex() consensus.Index  { return 0 }
func (idleReplica) AppliedIndex() consensus.Index { return 0 }
func (idleReplica) IsLeader() bool                { return false }
func (idleReplica) Fenced() bool                  { return false }
func (idleReplica) Leader() (rdma.NodeID, bool)   { return 0, false }

// With credentials the metrics listener is mutual TLS like the others: a
// stranger (plain HTTP, or TLS without a cluster certificate) gets nothing;
// a client of the cluster gets the metrics.
func TestMetricsListenerAuthenticates(t *testing.T) {
	ca, err := clustertls.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	node, err := clustertls.IssueCredentials(ca, clustertls.NodeIdentity(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opsPEM, err := clustertls.Issue(ca, clustertls.ClientIdentity("ops"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := clustertls.Load(ca.Cert, opsPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	cfg.MetricsAddress = addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := serveNodeMetrics(ctx, cfg, node, idleReplica{}, nil, log.New(io.Discard, "", 0)); err != nil {
		t.Fatal(err)
	}
	get := func(c *http.Client, url string) (string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	short := &http.Client{Timeout: 5 * time.Second}
	if body, err := get(short, "http://"+addr+"/metrics"); err == nil && strings.Contains(body, "mu_") {
		t.Fatal("plain HTTP got the metrics")
	}
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if body, err := get(noCert, "https://"+addr+"/metrics"); err == nil && strings.Contains(body, "mu_") {
		t.Fatal("TLS without a cluster certificate got the metrics")
	}
	member := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ops.ClientConfig(1)}}
	body, err := get(member, "https://"+addr+"/metrics")
	if err != nil {
		t.Fatalf("cluster client: %v", err)
	}
	if !strings.Contains(body, "mu_") {
		t.Fatalf("cluster client got no mu_ metrics:\n%.300s", body)
	}
	// A standard scraper (Prometheus's tls_config: ca_file, cert_file,
	// key_file, server_name) verifies the node by name: its own, or the
	// name every node carries.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.Cert) {
		t.Fatal("CA PEM")
	}
	pair, err := tls.X509KeyPair(opsPEM.Cert, opsPEM.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mu-node-1", clustertls.NodeServerName} {
		std := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: name}}}
		if _, err := get(std, "https://"+addr+"/metrics"); err != nil {
			t.Fatalf("standard TLS client with server_name %s: %v", name, err)
		}
	}
}

// durableReplica holds index 42 on disk, with 3 committed entries not yet.
type durableReplica struct{ idleReplica }

func (durableReplica) Stats() consensus.Stats {
	return consensus.Stats{Persisted: 42, LossWindowEntries: 3, LossWindowNs: 2e6}
}

// A node with a journal exports its gauges, in log indexes; one without
// exports none.
func TestNodeMetricsJournalGauges(t *testing.T) {
	gauges := func(durability string) map[string]float64 {
		cfg := DefaultConfig()
		cfg.Durability = durability
		reg, err := metrics.Registry(newNodeCollector(cfg, durableReplica{}), nil)
		if err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "mu_wal_") {
				out[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return out
	}
	if g := gauges("memory"); len(g) != 0 {
		t.Errorf("durability memory exports %v", g)
	}
	g := gauges("sync")
	want := map[string]float64{"mu_wal_durable_index": 42, "mu_wal_loss_window_entries": 3, "mu_wal_loss_window_age_seconds": 0.002}
	for name, v := range want {
		if g[name] != v {
			t.Errorf("%s = %v, want %v (all: %v)", name, g[name], v, g)
		}
	}
}
