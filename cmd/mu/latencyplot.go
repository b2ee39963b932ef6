package main

import (
	"fmt"
	"math"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/rdmaconsensus/mu/internal/chart"
)

// latencySeries is one measured distribution of durations in ns.
type latencySeries struct {
	Name string
	Hist *hdrhistogram.Histogram
}

// percentilePoints samples h the way HdrHistogram's percentile
// distribution does: five points per halving of the distance to 100%, up
// to the percentile the sample count can still resolve.
func percentilePoints(h *hdrhistogram.Histogram, perNs float64) []chart.Quantile {
	var q []chart.Quantile
	n := float64(h.TotalCount())
	for k := 1; ; k++ {
		p := 100 * (1 - math.Pow(2, -float64(k)/5))
		if 1/(1-p/100) > n {
			break
		}
		q = append(q, chart.Quantile{Percentile: p, Value: float64(h.ValueAtQuantile(p)) / perNs})
	}
	return q
}

// writeLatencyPlot writes latency by percentile of every series to path
// (.png or .svg), on log scales, and its data beside it (.json).
func writeLatencyPlot(path, title string, series []latencySeries) error {
	d, err := latencyPlotData(title, series)
	if err != nil {
		return err
	}
	if err := writePlotData(path, d); err != nil {
		return err
	}
	return drawLatencyPlot(path, title, series)
}

func drawLatencyPlot(path, title string, series []latencySeries) error {
	var maxNs int64
	for _, s := range series {
		maxNs = max(maxNs, s.Hist.Max())
	}
	perNs, unit := chart.DurationUnit(float64(maxNs))
	var ps []chart.PercentileSeries
	for _, s := range series {
		ps = append(ps, chart.PercentileSeries{Name: fmt.Sprintf("%s (%d samples)", s.Name, s.Hist.TotalCount()),
			Quantiles: percentilePoints(s.Hist, perNs)})
	}
	p, err := chart.Percentiles(title, "latency ("+unit+")", ps)
	if err != nil {
		return err
	}
	return chart.Save(path, vg.Points(720), vg.Points(420), []*plot.Plot{p})
}
