package chart

import (
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Series is a named sample, in the unit of the axis it is drawn on.
type Series struct {
	Name   string
	Values []float64
}

// CDF draws the empirical cumulative distribution of each series: the
// fraction of its values at or below x, as a step line.
func CDF(title, xLabel string, series []Series) (*plot.Plot, error) {
	p := newPlot(title, xLabel, "fraction at or below")
	p.Add(plotter.NewGrid())
	for i, s := range series {
		if len(s.Values) == 0 {
			continue
		}
		v := slices.Sorted(slices.Values(s.Values))
		pts := make(plotter.XYs, 0, len(v)+1)
		pts = append(pts, plotter.XY{X: v[0], Y: 0})
		for k, x := range v {
			pts = append(pts, plotter.XY{X: x, Y: float64(k+1) / float64(len(v))})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.StepStyle = plotter.PostStep
		l.Color, l.Width = colorAt(i), vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	p.Y.Min, p.Y.Max = 0, 1
	p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 0.25, Label: "0.25"},
		{Value: 0.5, Label: "0.5"}, {Value: 0.75, Label: "0.75"}, {Value: 1, Label: "1"}}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(8)
	return p, nil
}
