// Package peers measures the Raft libraries mu is compared with — etcd raft
// (go.etcd.io/raft/v3) and hashicorp/raft — in one process on this machine:
// commit latency of sequential proposals and failover time after the leader
// is cut off. Each library runs a 3-node cluster in memory, tuned for speed
// (no disk, in-process message passing, the shortest timeouts that stay
// stable), so the figures are the floor of what the library itself costs.
//
// Definitions, identical for both libraries (and meant for mu's own figures
// printed beside them):
//   - commit latency: from the client handing a 64-byte proposal to the
//     leader until the client learns that the leader applied it;
//   - failover: from the instant the leader is isolated (every message to
//     and from it dropped) until a proposal made at the new leader is
//     applied there; election is the part of it until a new leader exists.
package peers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Config says how much to measure.
type Config struct {
	Proposals        int           // sequential proposals measured for commit latency
	WarmupProposals  int           // proposals made before measuring
	PayloadBytes     int           // bytes per proposal; at least 8 (a proposal id)
	Failovers        int           // leader isolations measured
	ProposalTimeout  time.Duration // a proposal not applied by then is resent to the current leader
	FailoverDeadline time.Duration // a failover that takes longer fails the run
}

// DefaultConfig is the run the comparison table is made from.
func DefaultConfig() Config {
	return Config{
		Proposals: 20000, WarmupProposals: 1000, PayloadBytes: 64, Failovers: 20,
		ProposalTimeout: 200 * time.Millisecond, FailoverDeadline: 10 * time.Second,
	}
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.Proposals < 1:
		return fmt.Errorf("peers: Proposals = %d, need at least 1", c.Proposals)
	case c.WarmupProposals < 0:
		return fmt.Errorf("peers: WarmupProposals = %d, must not be negative", c.WarmupProposals)
	case c.PayloadBytes < 8:
		return fmt.Errorf("peers: PayloadBytes = %d, need at least 8 for the proposal id", c.PayloadBytes)
	case c.Failovers < 0:
		return fmt.Errorf("peers: Failovers = %d, must not be negative", c.Failovers)
	case c.ProposalTimeout <= 0:
		return fmt.Errorf("peers: ProposalTimeout = %s, must be positive", c.ProposalTimeout)
	case c.FailoverDeadline <= 0:
		return fmt.Errorf("peers: FailoverDeadline = %s, must be positive", c.FailoverDeadline)
	}
	return nil
}

// Result holds one system's measurements; histograms record nanoseconds.
type Result struct {
	System   string
	Settings string // the tuning the figures were taken with
	Commit   *hdrhistogram.Histogram
	Failover *hdrhistogram.Histogram
	Election *hdrhistogram.Histogram // the part of Failover until a new leader exists
	// Retries counts proposals resent because leadership moved during the
	// commit-latency run (a spurious election: the timeouts are too tight
	// for the machine's load). The resend's wait is in the Commit sample.
	Retries int
}

func newResult(system, settings string) *Result {
	return &Result{
		System: system, Settings: settings,
		Commit: newHistogram(), Failover: newHistogram(), Election: newHistogram(),
	}
}

// newHistogram tracks 1 ns .. 100 s with 3 significant digits.
func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, int64(100*time.Second), 3) }

func record(h *hdrhistogram.Histogram, d time.Duration) {
	// Values above the range are clamped rather than lost: they are failures
	// the table should still show as its maximum.
	ns := max(min(d.Nanoseconds(), h.HighestTrackableValue()), 1)
	_ = h.RecordValue(ns)
}

// Row is one line of the comparison table, in nanoseconds. Other systems
// (mu itself) fill a Row from their own measurements to print alongside.
type Row struct {
	System                                      string
	CommitCount                                 int64
	CommitP50Ns, CommitP99Ns, CommitP999Ns      int64
	FailoverCount                               int64
	FailoverP50Ns, FailoverP99Ns, ElectionP50Ns int64
	Retries                                     int
	Settings                                    string
}

// Row summarises r. Another system (mu) can fill a Result with its own
// histograms and call Row; a nil histogram gives zeros, printed as "-".
func (r *Result) Row() Row {
	q := func(h *hdrhistogram.Histogram, p float64) int64 {
		if h == nil {
			return 0
		}
		return h.ValueAtQuantile(p)
	}
	n := func(h *hdrhistogram.Histogram) int64 {
		if h == nil {
			return 0
		}
		return h.TotalCount()
	}
	return Row{
		System:        r.System,
		CommitCount:   n(r.Commit),
		CommitP50Ns:   q(r.Commit, 50),
		CommitP99Ns:   q(r.Commit, 99),
		CommitP999Ns:  q(r.Commit, 99.9),
		FailoverCount: n(r.Failover),
		FailoverP50Ns: q(r.Failover, 50),
		FailoverP99Ns: q(r.Failover, 99),
		ElectionP50Ns: q(r.Election, 50),
		Retries:       r.Retries,
		Settings:      r.Settings,
	}
}

// WriteTable prints rows as an aligned text table.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tcommits\tcommit p50\tp99\tp99.9\tfailovers\tfailover p50\tp99\telection p50\tretries\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t\n", r.System, r.CommitCount,
			FormatNs(r.CommitP50Ns), FormatNs(r.CommitP99Ns), FormatNs(r.CommitP999Ns), r.FailoverCount,
			FormatNs(r.FailoverP50Ns), FormatNs(r.FailoverP99Ns), FormatNs(r.ElectionP50Ns), r.Retries)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(w, "%s: %s\n", r.System, r.Settings); err != nil {
			return err
		}
	}
	return nil
}

// WriteMarkdown prints rows as a Markdown table.
func WriteMarkdown(w io.Writer, rows []Row) error {
	fmt.Fprintln(w, "| system | commits | commit p50 | commit p99 | commit p99.9 | failovers | failover p50 | failover p99 | election p50 | retries |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		if _, err := fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %d | %s | %s | %s | %d |\n", r.System, r.CommitCount,
			FormatNs(r.CommitP50Ns), FormatNs(r.CommitP99Ns), FormatNs(r.CommitP999Ns), r.FailoverCount,
			FormatNs(r.FailoverP50Ns), FormatNs(r.FailoverP99Ns), FormatNs(r.ElectionP50Ns), r.Retries); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		if _, err := fmt.Fprintf(w, "- %s: %s\n", r.System, r.Settings); err != nil {
			return err
		}
	}
	return nil
}

// FormatNs renders a duration in the unit that keeps 3-4 digits.
func FormatNs(ns int64) string {
	switch {
	case ns <= 0:
		return "-"
	case ns < 1_000:
		return fmt.Sprintf("%d ns", ns)
	case ns < 1_000_000:
		return fmt.Sprintf("%.1f µs", float64(ns)/1e3)
	case ns < 1_000_000_000:
		return fmt.Sprintf("%.2f ms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.2f s", float64(ns)/1e9)
}

// errTimeout marks a proposal that was not applied in time.
var errTimeout = errors.New("peers: proposal not applied in time")

// newPayload returns a fresh proposal of n bytes carrying id in its first 8.
// Fresh because both libraries keep the caller's slice in their log.
func newPayload(n int, id uint64) []byte {
	buf := make([]byte, n)
	binary.LittleEndian.PutUint64(buf, id)
	for i := 8; i < n; i++ {
		buf[i] = byte(i)
	}
	return buf
}

func payloadID(data []byte) (uint64, bool) {
	if len(data) < 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(data), true
}
