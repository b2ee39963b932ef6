package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/wal"
)

// Replica is what the collector reads; *consensus.Replica has it.
type Replica interface {
	Self() rdma.NodeID
	Stats() consensus.Stats
	CommitIndex() consensus.Index
	AppliedIndex() consensus.Index
	IsLeader() bool
	Fenced() bool
	Leader() (rdma.NodeID, bool)
}

// Durability is what the collector reads of the write-ahead log; *wal.WAL
// has it.
type Durability interface {
	Durable() uint64
	LossWindow() wal.LossWindow
}

// Collector is one replica's metrics. Register it with a registry; call
// ObserveCommit from the proposal path.
type Collector struct {
	r             Replica
	d             Durability // nil: the node runs without a write-ahead log
	commitLatency prometheus.Histogram
}

// CommitLatencyBuckets are the upper bounds (seconds) of the commit-latency
// histogram: doubling from 1 µs to about 1 s, so hardware (microseconds)
// and emulated or degraded runs (milliseconds) both fall inside.
var CommitLatencyBuckets = prometheus.ExponentialBuckets(1e-6, 2, 21)

// New is the collector of r; d may be nil.
func New(r Replica, d Durability) *Collector {
	return &Collector{r: r, d: d, commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mu_commit_latency_seconds",
		Help:    "Proposal on this replica, from the call to its return: committed on a majority and applied.",
		Buckets: CommitLatencyBuckets,
	})}
}

// ObserveCommit records one committed proposal's latency. Cheap enough for
// every proposal (an atomic add per bucket search); call it off the
// driver's thread.
func (c *Collector) ObserveCommit(d time.Duration) { c.commitLatency.Observe(d.Seconds()) }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	mNode         = desc("mu_node_id", "This replica's node id (labels the series of a node in a group's dashboards).")
	mLeaderID     = desc("mu_leader_node_id", "Node id this replica's detector names leader; absent while it names none.")
	mIsLeader     = desc("mu_is_leader", "1 while this replica leads.")
	mFenced       = desc("mu_fenced", "1 once this replica fenced itself: it no longer leads, applies or accepts proposals.")
	mCommitIndex  = desc("mu_commit_index", "Highest log index this replica knows committed.")
	mAppliedIndex = desc("mu_applied_index", "Highest log index applied to the state machine.")

	mWALDurable    = desc("mu_wal_durable_index", "Highest log index on stable storage.")
	mLossEntries   = desc("mu_wal_loss_window_entries", "Committed entries not yet durable in this node's write-ahead log (async mode): what it loses if it loses power now.")
	mLossAge       = desc("mu_wal_loss_window_age_seconds", "Age of the oldest entry not yet durable (0 when none).")
	counterMetrics = []struct {
		d   *prometheus.Desc
		get func(consensus.Stats) uint64
	}{
		{desc("mu_applied_entries_total", "Log entries (slots) applied."), func(s consensus.Stats) uint64 { return s.Applied }},
		{desc("mu_applied_commands_total", "Commands applied (an entry carries a batch)."), func(s consensus.Stats) uint64 { return s.Commands }},
		{desc("mu_leader_terms_total", "Times this replica became leader."), func(s consensus.Stats) uint64 { return s.LeaderTerms }},
		{desc("mu_leader_changes_started_total", "Leader changes this replica started (permission requests sent as would-be leader)."), func(s consensus.Stats) uint64 { return s.Elections }},
		{desc("mu_leader_deposed_total", "Times this leader stepped down on seeing a higher proposal number."), func(s consensus.Stats) uint64 { return s.Deposed }},
		{desc("mu_corrupt_slots_total", "Log slots that failed their checksum where they had to be whole (each fences the replica)."), func(s consensus.Stats) uint64 { return s.CorruptSlots }},
		{desc("mu_damaged_slots_total", "Slots read during a recovery that were neither whole nor provably empty."), func(s consensus.Stats) uint64 { return s.DamagedSlots }},
		{desc("mu_rdma_completion_errors_total", "RDMA work requests that completed with an error."), func(s consensus.Stats) uint64 { return s.OpErrors }},
		{desc("mu_catchups_total", "Bulk catch-ups of a follower started."), func(s consensus.Stats) uint64 { return s.CatchUps }},
		{desc("mu_recatchups_total", "Followers caught up again after their applied position stalled."), func(s consensus.Stats) uint64 { return s.Recatchups }},
		{desc("mu_snapshots_sent_total", "Snapshots sent to followers too far behind the log."), func(s consensus.Stats) uint64 { return s.SnapshotsSent }},
		{desc("mu_snapshots_restored_total", "Snapshots this replica restored."), func(s consensus.Stats) uint64 { return s.SnapshotsRestored }},
		{desc("mu_snapshot_failures_total", "Snapshots that failed or exceeded the configured size."), func(s consensus.Stats) uint64 { return s.SnapshotFailures }},
		{desc("mu_ring_full_steps_total", "Driver steps that found the log ring full (a majority has not applied the oldest slot)."), func(s consensus.Stats) uint64 { return s.ReclaimStalls }},
		{desc("mu_commit_gap_steps_total", "Driver steps where a committed slot had not yet arrived whole."), func(s consensus.Stats) uint64 { return s.CommitGaps }},
		{desc("mu_commit_words_total", "Commit-index words an idle leader wrote to followers."), func(s consensus.Stats) uint64 { return s.CommitWords }},
		{desc("mu_probes_total", "Empty entries an idle leader wrote to time its followers."), func(s consensus.Stats) uint64 { return s.Probes }},
		{desc("mu_stale_flushes_total", "Connections reset to drop writes of an earlier term."), func(s consensus.Stats) uint64 { return s.StaleFlushes }},
	}
)

// Describe sends every metric's description, the histogram's included.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mNode, mLeaderID, mIsLeader, mFenced, mCommitIndex, mAppliedIndex} {
		ch <- d
	}
	for _, m := range counterMetrics {
		ch <- m.d
	}
	if c.d != nil {
		ch <- mWALDurable
		ch <- mLossEntries
		ch <- mLossAge
	}
	c.commitLatency.Describe(ch)
}

// Collect reads the replica (and the log) now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g(mNode, float64(c.r.Self()))
	if id, ok := c.r.Leader(); ok {
		g(mLeaderID, float64(id))
	}
	g(mIsLeader, b(c.r.IsLeader()))
	g(mFenced, b(c.r.Fenced()))
	g(mCommitIndex, float64(c.r.CommitIndex()))
	g(mAppliedIndex, float64(c.r.AppliedIndex()))
	s := c.r.Stats()
	for _, m := range counterMetrics {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.get(s)))
	}
	if c.d != nil {
		lw := c.d.LossWindow()
		g(mWALDurable, float64(c.d.Durable()))
		g(mLossEntries, float64(lw.Entries))
		g(mLossAge, float64(lw.AgeNs)/1e9)
	}
	c.commitLatency.Collect(ch)
}
