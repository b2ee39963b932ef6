package chart

import (
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Quantile is a value at a percentile (0 < Percentile < 100).
type Quantile struct {
	Percentile float64
	Value      float64
}

// PercentileSeries is a named latency distribution, as HdrHistogram's
// percentile distribution prints it.
type PercentileSeries struct {
	Name      string
	Quantiles []Quantile
}

// Percentiles draws latency against percentile the way HdrHistogram's
// plotter does: the x axis is 1/(1-p) on a log scale, so 90%, 99%, 99.9%
// and 99.99% are evenly spaced and the tail is as wide as the body; the
// latency axis is logarithmic too, in the unit of yLabel.
func Percentiles(title, yLabel string, series []PercentileSeries) (*plot.Plot, error) {
	p := newPlot(title, "percentile", yLabel)
	p.Add(plotter.NewGrid())
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker = percentileTicks{}
	p.Y.Tick.Marker = plainLogTicks{}
	drawn := 0
	for i, s := range series {
		var pts plotter.XYs
		for _, q := range s.Quantiles {
			if q.Percentile <= 0 || q.Percentile >= 100 || q.Value <= 0 {
				continue // no place on a log scale
			}
			pts = append(pts, plotter.XY{X: 1 / (1 - q.Percentile/100), Y: q.Value})
		}
		if len(pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = colorAt(i), vg.Points(1.5)
		sc.Color, sc.Shape, sc.Radius = colorAt(i), draw.CircleGlyph{}, vg.Points(2)
		p.Add(l, sc)
		p.Legend.Add(s.Name, l, sc)
		drawn++
	}
	if drawn == 0 {
		return nil, fmt.Errorf("chart: %s: no positive value at a percentile between 0 and 100", title)
	}
	// From 0% to the next labelled percentile past the last point.
	p.X.Min, p.X.Max = 1, math.Pow(10, math.Ceil(math.Log10(p.X.Max*(1-1e-9))))
	// Headroom above the highest point, so the legend covers no line.
	decades := math.Log10(p.Y.Max / p.Y.Min)
	p.Y.Max *= math.Pow(10, max(decades, 1)*0.07*float64(drawn+1))
	p.Legend.Top, p.Legend.Left = true, true
	return p, nil
}

// percentileTicks labels 1/(1-p) at 0%, 50%, 90%, 99%, 99.9%, ... within the
// axis' range.
type percentileTicks struct{}

func (percentileTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for _, x := range []float64{1, 2, 10, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7} {
		if x >= lo*(1-1e-9) && x <= hi*(1+1e-9) {
			ticks = append(ticks, plot.Tick{Value: x, Label: percentLabel(100 - 100/x)})
		}
	}
	return ticks
}

func percentLabel(p float64) string {
	return strconv.FormatFloat(math.Round(p*1e4)/1e4, 'f', -1, 64) + "%"
}

// plainLogTicks are gonum's powers of ten, written out: "1000", not "1e+03".
type plainLogTicks struct{}

func (plainLogTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := (plot.LogTicks{Prec: -1}).Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}
