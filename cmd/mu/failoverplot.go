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
	return drawFailoverPlot(path, series)
}

// drawFailoverPlot draws a stacked bar of each failover's steps per series,
// then the distribution of failover times of every series; with no
// failover at all it draws nothing.
func drawFailoverPlot(path string, series []failoverSeries) error {
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
		p, err := chart.StackedBars(name+": steps of each failover", "failover (in order)", "time since the fault ("+unit+")",
			failoverStepNames, rows)
		if err != nil {
			return err
		}
		bars = append(bars, p)
		dist = append(dist, chart.Series{Name: name, Values: times})
	}
	if len(bars) == 0 {
		return nil // no failover to draw; the data file says so
	}
	cdf, err := chart.CDF("failover time (fault to the first order acknowledged by the new leader)", "failover time ("+unit+")", dist)
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
