package main

import (
	"fmt"
	"math"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/rdmaconsensus/mu/internal/chart"
)

// latencySeries is one measured distribution of durations in ns. Series
// of one Panel are drawn together, to be compared.
type latencySeries struct {
	Panel string
	Name  string
	Hist  *hdrhistogram.Histogram
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

// drawLatencyPlot draws one panel per distinct Panel, two a row, in the
// order the series come.
func drawLatencyPlot(path, title string, series []latencySeries) error {
	var maxNs int64
	for _, s := range series {
		maxNs = max(maxNs, s.Hist.Max())
	}
	perNs, unit := chart.DurationUnit(float64(maxNs))
	var panels []string
	byPanel := map[string][]chart.PercentileSeries{}
	for _, s := range series {
		if _, ok := byPanel[s.Panel]; !ok {
			panels = append(panels, s.Panel)
		}
		byPanel[s.Panel] = append(byPanel[s.Panel], chart.PercentileSeries{
			Name: fmt.Sprintf("%s (%d samples)", s.Name, s.Hist.TotalCount()), Quantiles: percentilePoints(s.Hist, perNs)})
	}
	var rows [][]*plot.Plot
	for i, name := range panels {
		t := title
		if name != "" {
			t = name + ": " + title
		}
		p, err := chart.Percentiles(t, "latency ("+unit+")", byPanel[name])
		if err != nil {
			return err
		}
		if i%2 == 0 {
			rows = append(rows, nil)
		}
		rows[len(rows)-1] = append(rows[len(rows)-1], p)
	}
	return chart.Save(path, vg.Points(900), vg.Points(320*float64(len(rows))), rows...)
}
