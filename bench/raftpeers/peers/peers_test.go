package peers

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.Proposals, cfg.WarmupProposals, cfg.Failovers = 200, 20, 2
	return cfg
}

func checkResult(t *testing.T, res *Result, cfg Config) {
	t.Helper()
	if got := res.Commit.TotalCount(); got != int64(cfg.Proposals) {
		t.Errorf("%s: %d commit samples, want %d", res.System, got, cfg.Proposals)
	}
	if got := res.Failover.TotalCount(); got != int64(cfg.Failovers) {
		t.Errorf("%s: %d failover samples, want %d", res.System, got, cfg.Failovers)
	}
	if res.Commit.Min() <= 0 || res.Failover.Min() <= 0 {
		t.Errorf("%s: non-positive sample", res.System)
	}
	// A new leader cannot commit before it exists, and no follower may
	// campaign before its election timeout (5 ms nominal in both default
	// tunings, less at most one heartbeat interval already elapsed at the
	// cut, and ticker jitter) has run out.
	if res.Election.Max() > res.Failover.Max() {
		t.Errorf("%s: election %d ns longer than failover %d ns", res.System, res.Election.Max(), res.Failover.Max())
	}
	if res.Failover.Min() < int64(2*time.Millisecond) {
		t.Errorf("%s: failover %d ns is shorter than any election timeout configured", res.System, res.Failover.Min())
	}
}

func TestEtcd(t *testing.T) {
	cfg := smallConfig()
	res, err := RunEtcd(context.Background(), cfg, DefaultEtcdTuning())
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
}

func TestHashicorp(t *testing.T) {
	cfg := smallConfig()
	res, err := RunHashicorp(context.Background(), cfg, DefaultHashicorpTuning())
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
}

func TestValidate(t *testing.T) {
	for _, mutate := range []func(*Config){
		func(c *Config) { c.Proposals = 0 },
		func(c *Config) { c.PayloadBytes = 7 },
		func(c *Config) { c.Failovers = -1 },
		func(c *Config) { c.ProposalTimeout = 0 },
	} {
		c := DefaultConfig()
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTable(t *testing.T) {
	rows := []Row{{System: "x", CommitCount: 3, CommitP50Ns: 1500, CommitP99Ns: 2_500_000, FailoverP50Ns: 900, Settings: "s"}}
	var buf bytes.Buffer
	if err := WriteTable(&buf, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1.5 µs", "2.50 ms", "900 ns", "x: s"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestRowOfPartialResult(t *testing.T) {
	h := newHistogram()
	record(h, 3*time.Microsecond)
	row := (&Result{System: "mu", Commit: h}).Row()
	if row.CommitCount != 1 || row.CommitP50Ns < 2990 || row.CommitP50Ns > 3010 || row.FailoverCount != 0 || row.FailoverP50Ns != 0 {
		t.Fatalf("row %+v", row)
	}
}
