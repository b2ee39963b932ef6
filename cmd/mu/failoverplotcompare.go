package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/rdmaconsensus/mu/internal/chart"
)

// namedFailovers is one data file's failovers under the name its bars get.
type namedFailovers struct {
	Name string
	Data plotData
}

// comparedSteps are the groups of the comparison, bottom step first, then
// the whole failover.
var comparedSteps = []string{"detection", "permission switch", "prepare + catch-up", "first commit", "whole failover"}

// stepMedians are the median of each step over the complete failovers of
// one series, and the median failover over all of them, in ns (comparedSteps
// order), with how many failovers each counts.
func stepMedians(fd failoverData) (medians []float64, complete, all int) {
	var steps [4][]int64
	var total []int64
	for _, p := range fd.Failovers {
		total = append(total, p.FailoverNs)
		if !p.Complete {
			continue
		}
		complete++
		for i, v := range []int64{p.DetectNs, p.PermissionNs, p.CatchUpNs, p.FirstCommitNs} {
			steps[i] = append(steps[i], v)
		}
	}
	for _, s := range steps {
		medians = append(medians, median(s))
	}
	return append(medians, median(total)), complete, len(total)
}

// median of v (the lower middle value of an even count); NaN when empty.
func median(v []int64) float64 {
	if len(v) == 0 {
		return nan()
	}
	s := slices.Sorted(slices.Values(v))
	return float64(s[(len(s)-1)/2])
}

func nan() float64 { var zero float64; return zero / zero }

// drawFailoverComparison draws, for each fault, the median of each failover
// step of every source's series of that group size and fault side by side,
// on a log scale (a simulator's microseconds beside an emulator's
// milliseconds).
func drawFailoverComparison(path string, nodes int, faults []string, sources []namedFailovers) error {
	var row []*plot.Plot
	for _, fault := range faults {
		var series []chart.BarSeries
		for _, src := range sources {
			i := slices.IndexFunc(src.Data.Failover, func(fd failoverData) bool { return fd.Nodes == nodes && fd.Fault == fault })
			if i < 0 {
				return fmt.Errorf("%s has no series of %d nodes, %s", src.Name, nodes, fault)
			}
			m, complete, all := stepMedians(src.Data.Failover[i])
			if all == 0 {
				return fmt.Errorf("%s: %d nodes, %s has no failover", src.Name, nodes, fault)
			}
			for j := range m {
				m[j] /= 1e3 // µs
			}
			series = append(series, chart.BarSeries{Name: fmt.Sprintf("%s (%d failovers, steps of %d)", src.Name, all, complete), Values: m})
		}
		p, err := chart.GroupedBars(fmt.Sprintf("%d nodes, %s: median of each failover step", nodes, fault),
			"median time (log scale)", comparedSteps, series, true, func(us float64) string { return shortLatency(int64(us * 1e3)) })
		if err != nil {
			return err
		}
		row = append(row, p)
	}
	return chart.Save(path, vg.Points(520*float64(len(row))), vg.Points(360), row)
}

// sourceName is how a data file is named in a comparison: names[i] (--name)
// when given, else the source it records, else its file name.
func sourceName(names []string, i int, d plotData, file string) string {
	switch {
	case i < len(names) && strings.TrimSpace(names[i]) != "":
		return strings.TrimSpace(names[i])
	case d.Source != "":
		return d.Source
	}
	return filepath.Base(file)
}
