package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/hwmon"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/wal"
)

type fakeReplica struct {
	leader, fenced bool
}

func (fakeReplica) Self() rdma.NodeID { return 2 }
func (fakeReplica) Stats() consensus.Stats {
	return consensus.Stats{Applied: 7, Commands: 9, LeaderTerms: 1, Elections: 3, CorruptSlots: 0}
}
func (fakeReplica) CommitIndex() consensus.Index  { return 12 }
func (fakeReplica) AppliedIndex() consensus.Index { return 11 }
func (f fakeReplica) IsLeader() bool              { return f.leader }
func (f fakeReplica) Fenced() bool                { return f.fenced }
func (fakeReplica) Leader() (rdma.NodeID, bool)   { return 2, true }

type fakeWAL struct{}

func (fakeWAL) Durable() uint64            { return 10 }
func (fakeWAL) LossWindow() wal.LossWindow { return wal.LossWindow{Entries: 2, AgeNs: 1_500_000} }

func TestCollectorFollowsConventions(t *testing.T) {
	c := New(fakeReplica{leader: true}, fakeWAL{})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestCollectorReadsTheReplica(t *testing.T) {
	c := New(fakeReplica{leader: true}, fakeWAL{})
	c.ObserveCommit(3 * time.Microsecond)
	want := `
# HELP mu_commit_index Highest log index this replica knows committed.
# TYPE mu_commit_index gauge
mu_commit_index 12
# HELP mu_is_leader 1 while this replica leads.
# TYPE mu_is_leader gauge
mu_is_leader 1
# HELP mu_leader_changes_started_total Leader changes this replica started (permission requests sent as would-be leader).
# TYPE mu_leader_changes_started_total counter
mu_leader_changes_started_total 3
# HELP mu_wal_loss_window_age_seconds Age of the oldest entry not yet durable (0 when none).
# TYPE mu_wal_loss_window_age_seconds gauge
mu_wal_loss_window_age_seconds 0.0015
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"mu_commit_index", "mu_is_leader", "mu_leader_changes_started_total", "mu_wal_loss_window_age_seconds"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "mu_commit_latency_seconds"); n != 1 {
		t.Errorf("commit latency histogram: %d series, want 1", n)
	}
}

func TestCollectorWithoutWALExportsNoWALMetrics(t *testing.T) {
	c := New(fakeReplica{}, nil)
	if n := testutil.CollectAndCount(c, "mu_wal_durable_index", "mu_wal_loss_window_entries"); n != 0 {
		t.Errorf("%d WAL series without a WAL", n)
	}
}

func TestServeAnswersMetrics(t *testing.T) {
	reg, err := Registry(New(fakeReplica{fenced: true}, nil), &hwmon.Monitor{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, reg) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "mu_fenced 1") || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("scrape has no mu_fenced 1:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
}
