package chart

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// BarSeries is one named set of bars: Values[g] is its bar in group g, in
// the unit of the value axis (NaN or <= 0 on a log axis: no bar).
type BarSeries struct {
	Name   string
	Values []float64
}

// GroupedBars draws, for each named group along the x axis, one bar per
// series side by side, each labelled with its value written by label
// (nil: none), as are a log axis' ticks. With logY the value axis is logarithmic, so series that differ by orders of
// magnitude (a simulator's microseconds and an emulator's milliseconds)
// share one figure.
func GroupedBars(title, yLabel string, groups []string, series []BarSeries, logY bool, label func(float64) string) (*plot.Plot, error) {
	if len(groups) == 0 || len(series) == 0 {
		return nil, fmt.Errorf("chart: %s: no groups or no series", title)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		if len(s.Values) != len(groups) {
			return nil, fmt.Errorf("chart: %s: series %q has %d values for %d groups", title, s.Name, len(s.Values), len(groups))
		}
		for _, v := range s.Values {
			if v > 0 || (!logY && !math.IsNaN(v)) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(hi, -1) {
		return nil, fmt.Errorf("chart: %s: no value to draw", title)
	}
	p := newPlot(title, "", yLabel)
	p.Add(plotter.NewGrid())
	width := groupWidth / float64(len(series))
	for i, s := range series {
		b := &barSet{values: s.Values, offset: -groupWidth/2 + width*(float64(i)+0.5), width: width,
			color: colorAt(i), label: label, logY: logY}
		p.Add(b)
		p.Legend.Add(s.Name, b)
	}
	ticks := make(plot.ConstantTicks, len(groups))
	for g, name := range groups {
		ticks[g] = plot.Tick{Value: float64(g + 1), Label: name}
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = 0.5, float64(len(groups))+0.5
	// Headroom above the tallest bar for its label and the legend.
	headroom := 0.07 * float64(len(series)+2)
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = labelledLogTicks{label}
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
		decades := math.Log10(hi / p.Y.Min)
		p.Y.Max = hi * math.Pow(10, max(decades, 1)*headroom)
	} else {
		p.Y.Min, p.Y.Max = min(0, lo), hi*(1+headroom)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p, nil
}

// groupWidth is the share of the distance between two groups their bars
// take.
const groupWidth = 0.8

// barSet draws one series' bars, offset from each group's centre, in data
// coordinates, with its value above each.
type barSet struct {
	values        []float64
	offset, width float64
	color         color.Color
	label         func(float64) string
	logY          bool
}

func (b *barSet) drawable(v float64) bool { return !math.IsNaN(v) && (v > 0 || !b.logY) }

func (b *barSet) Plot(dc draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&dc)
	base := dc.Min.Y // a log axis has no zero: bars stand on the axis
	if !b.logY {
		base = ty(0)
	}
	style := p.Y.Tick.Label // the tick labels' font, centred over the bar
	style.XAlign, style.YAlign = draw.XCenter, draw.YBottom
	for g, v := range b.values {
		if !b.drawable(v) {
			continue
		}
		x := float64(g+1) + b.offset
		x0, x1, y := tx(x-b.width/2), tx(x+b.width/2), ty(v)
		dc.FillPolygon(b.color, dc.ClipPolygonXY([]vg.Point{{X: x0, Y: base}, {X: x1, Y: base}, {X: x1, Y: y}, {X: x0, Y: y}}))
		if b.label != nil {
			dc.FillText(style, vg.Point{X: (x0 + x1) / 2, Y: y + vg.Points(2)}, b.label(v))
		}
	}
}

func (b *barSet) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin, ymax = math.Inf(1), math.Inf(-1)
	for _, v := range b.values {
		if b.drawable(v) {
			ymin, ymax = min(ymin, v), max(ymax, v)
		}
	}
	return 0.5, float64(len(b.values)) + 0.5, ymin, ymax
}

func (b *barSet) Thumbnail(dc *draw.Canvas) {
	r := dc.Rectangle
	dc.FillPolygon(b.color, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
}

// labelledLogTicks are gonum's powers of ten, labelled by label (when
// given) like the bars: "1ms" rather than "1000".
type labelledLogTicks struct{ label func(float64) string }

func (l labelledLogTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := (plainLogTicks{}).Ticks(lo, hi)
	if l.label != nil {
		for i := range ticks {
			if ticks[i].Label != "" {
				ticks[i].Label = l.label(ticks[i].Value)
			}
		}
	}
	return ticks
}
