package main

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/rdmaconsensus/mu/internal/chart"
)

// failoverStepNames names the segments of a failover's bar, bottom first; a
// failover whose steps were not all recorded is one segment, the last.
var failoverStepNames = []string{
	"detection", "permission switch", "prepare + catch-up", "first commit",
	"until the client's acknowledgement", "steps not recorded",
}

// writeFailoverPlot writes the failover figure to path (.png or .svg) and
// its data beside it (.json, for mu bench plot).
func writeFailoverPlot(path string, series []failoverSeries) error {
	if err := writePlotData(path, failoverPlotData(series)); err != nil {
		return err
	}
	return drawFailoverPlot(path, "", series)
}

// drawFailoverPlot draws a stacked bar of each failover's steps per series,
// then the distribution of failover times of every series; with no
// failover at all it draws nothing. source, if not empty, says where the
// failovers were measured, in the distribution's title.
func drawFailoverPlot(path, source string, series []failoverSeries) error {
	var maxNs int64
	for _, s := range series {
		for _, f := range s.Faults {
			maxNs = max(maxNs, f.FailoverNs)
		}
	}
	perNs, unit := chart.DurationUnit(float64(maxNs))
	v := func(ns int64) float64 { return float64(ns) / perNs }

	var bars []*plot.Plot
	var dist []chart.Series
	for _, s := range series {
		if len(s.Faults) == 0 {
			continue // a series that failed before its first failover
		}
		name := fmt.Sprintf("%d nodes, %s", s.Nodes, s.Kind)
		var rows [][]float64
		var times []float64
		for _, f := range s.Faults {
			row := make([]float64, len(failoverStepNames))
			if b := f.Steps; b.Complete {
				row[0], row[1], row[2], row[3] = v(b.DetectNs), v(b.PermissionNs), v(b.CatchUpNs), v(b.FirstCommitNs)
				row[4] = v(f.FailoverNs - b.DetectNs - b.PermissionNs - b.CatchUpNs - b.FirstCommitNs)
			} else {
				row[5] = v(f.FailoverNs)
			}
			rows = append(rows, row)
			times = append(times, v(f.FailoverNs))
		}
		names, rows := usedSteps(failoverStepNames, rows)
		p, err := chart.StackedBars(name+": steps of each failover", "failover (in order)", "time since the fault ("+unit+")",
			names, rows)
		if err != nil {
			return err
		}
		bars = append(bars, p)
		dist = append(dist, chart.Series{Name: name, Values: times})
	}
	if len(bars) == 0 {
		return nil // no failover to draw; the data file says so
	}
	title := "failover time (fault to the first order acknowledged by the new leader)"
	if source != "" {
		title = "failover time (fault to the new leader's first commit), " + source
	}
	cdf, err := chart.CDF(title, "failover time ("+unit+")", dist)
	if err != nil {
		return err
	}
	// Two bar plots a row, the distribution below them, full width.
	var rows [][]*plot.Plot
	for i := 0; i < len(bars); i += 2 {
		rows = append(rows, bars[i:min(i+2, len(bars))])
	}
	rows = append(rows, []*plot.Plot{cdf})
	return chart.Save(path, vg.Points(900), vg.Points(300*float64(len(rows))), rows...)
}

// usedSteps drops the steps no failover of a series spent time in (a
// simulator's failovers have all their steps and no client wait), so the
// legend names only what the bars show.
func usedSteps(names []string, rows [][]float64) ([]string, [][]float64) {
	var keep []int
	for s := range names {
		for _, r := range rows {
			if r[s] > 0 {
				keep = append(keep, s)
				break
			}
		}
	}
	out := make([][]float64, len(rows))
	for i, r := range rows {
		for _, s := range keep {
			out[i] = append(out[i], r[s])
		}
	}
	kept := make([]string, len(keep))
	for i, s := range keep {
		kept[i] = names[s]
	}
	return kept, out
}
