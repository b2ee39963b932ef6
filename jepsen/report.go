package jepsen

import (
	"fmt"
	"io"
	"slices"

	"github.com/rdmaconsensus/mu/internal/chart"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// LeaderChanges counts the monitor's changes of leader: a sample naming a
// leader other than the last one named (a stretch without a leader
// between two reigns of the same node is not a change).
func (r *Result) LeaderChanges() int {
	n, last := 0, 0
	for _, s := range r.Samples {
		if s.Leader == 0 {
			continue
		}
		if last != 0 && s.Leader != last {
			n++
		}
		last = s.Leader
	}
	return n
}

// Counts is how many steps of each kind ran.
func (r *Result) Counts() (byKind map[Kind]int, partitions int) {
	byKind = map[Kind]int{}
	for _, s := range r.Steps {
		byKind[s.Kind]++
		if s.Kind.IsPartition() {
			partitions++
		}
	}
	return byKind, partitions
}

func ms(ns int64) string { return fmt.Sprintf("%.1f ms", float64(ns)/1e6) }

// OK: the verdict holds and every node caught up at the end.
func (r *Result) OK() bool { return r.Verdict.OK() && r.SettleErr == "" }

// WriteSummary prints the run's figures and verdict.
func (r *Result) WriteSummary(w io.Writer) {
	o := r.Opts.Schedule
	v := r.Verdict
	byKind, parts := r.Counts()
	fmt.Fprintf(w, "seed %d, %d nodes, %d clients, %.0f s under faults\n", o.Seed, o.Nodes, r.Opts.Clients, float64(r.EndNs-r.StartNs)/1e9)
	fmt.Fprintf(w, "steps %d (partitions %d):", len(r.Steps), parts)
	for _, k := range AllKinds {
		if byKind[k] > 0 {
			fmt.Fprintf(w, " %s %d", k, byKind[k])
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "operations %d, acknowledged %d, unknown outcome %d (of which applied %d)\n", v.Ops, v.Acked, v.Unknown, v.UnknownApplied)
	fmt.Fprintf(w, "lost %d", v.Lost)
	for _, d := range v.LostDetail {
		fmt.Fprintf(w, "\n  %s", d)
	}
	fmt.Fprintln(w)
	if v.Divergent != "" {
		fmt.Fprintf(w, "logs diverge: %s\n", v.Divergent)
	} else {
		fmt.Fprintf(w, "applied logs of %d nodes are prefixes of one another\n", len(r.Logs))
	}
	lin := "yes"
	if !v.Linearizable {
		lin = "no (" + v.LinearNote + ")"
	}
	fmt.Fprintf(w, "linearizable %s", lin)
	if v.Unchecked > 0 {
		fmt.Fprintf(w, " (%d acknowledged orders below every node's snapshot left out)", v.Unchecked)
	}
	fmt.Fprintln(w)
	if r.SettleErr != "" {
		fmt.Fprintf(w, "settle: %s\n", r.SettleErr)
	}
	fmt.Fprintf(w, "leader changes %d\n", r.LeaderChanges())
	var fo []int64
	missed := 0
	for _, s := range r.Steps {
		if !s.HitsLeader() {
			continue
		}
		if s.FailoverNs > 0 {
			fo = append(fo, s.FailoverNs)
		} else {
			missed++
		}
	}
	if len(fo) > 0 {
		slices.Sort(fo)
		fmt.Fprintf(w, "failover (fault -> first order acknowledged by another node), %d faults on the leader: min %s median %s max %s",
			len(fo), ms(fo[0]), ms(fo[len(fo)/2]), ms(fo[len(fo)-1]))
		if missed > 0 {
			fmt.Fprintf(w, "; %d without another leader before the heal", missed)
		}
		fmt.Fprintln(w)
	}
	for i, s := range r.Steps {
		f := ""
		if s.FailoverNs > 0 {
			f = " failover " + ms(s.FailoverNs)
		}
		if s.Err != "" {
			f += " error: " + s.Err
		}
		fmt.Fprintf(w, "  %3d %+8.1fs %-14s %s%s\n", i+1, float64(s.AtNs-r.StartNs)/1e9, s.Kind, s.Desc, f)
	}
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "verdict %s\n", verdict)
}

// Timeline is the run as the chart package draws it: faults as spans,
// the leader over time, acknowledged orders per second.
func (r *Result) Timeline(title string) chart.Timeline {
	sec := func(ns int64) float64 { return float64(ns-r.StartNs) / 1e9 }
	t := chart.Timeline{Title: title, EndS: sec(r.EndNs), ThroughputLabel: "acknowledged orders/s"}
	for _, s := range r.Steps {
		t.Faults = append(t.Faults, chart.Fault{Name: string(s.Kind), StartS: max(0, sec(s.AtNs)), EndS: max(0, sec(s.HealNs))})
	}
	last := -2
	for _, s := range r.Samples {
		n := s.Leader
		if n == 0 {
			n = -1
		}
		if n != last && s.AtNs >= r.StartNs {
			t.Leaders = append(t.Leaders, chart.LeaderChange{AtS: sec(s.AtNs), Node: n})
			last = n
		}
	}
	buckets := make([]float64, int(sec(r.EndNs))+1)
	for _, o := range r.History {
		if o.Acked && o.RetNs >= r.StartNs && o.RetNs <= r.EndNs {
			buckets[int(sec(o.RetNs))]++
		}
	}
	for i, b := range buckets {
		t.Throughput = append(t.Throughput, chart.Rate{AtS: float64(i + 1), Value: b})
	}
	return t
}

// SaveTimeline draws the timeline to path (.png or .svg).
func (r *Result) SaveTimeline(path, title string) error {
	plots, err := chart.TimelinePlots(r.Timeline(title))
	if err != nil {
		return err
	}
	rows := make([][]*plot.Plot, 0, len(plots))
	for _, p := range plots {
		rows = append(rows, []*plot.Plot{p})
	}
	return chart.Save(path, 24*vg.Centimeter, 14*vg.Centimeter, rows...)
}
