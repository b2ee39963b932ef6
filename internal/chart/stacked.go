package chart

import (
	"fmt"
	"image/color"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// StackedBars is one bar per event (a failover, say), numbered from 1 on
// the x axis, each bar its steps stacked bottom first: bars[i][s] is step s
// of event i, in the unit of yLabel. Steps are named in the legend.
func StackedBars(title, xLabel, yLabel string, steps []string, bars [][]float64) (*plot.Plot, error) {
	for i, b := range bars {
		if len(b) != len(steps) {
			return nil, fmt.Errorf("chart: bar %d has %d steps, want %d", i+1, len(b), len(steps))
		}
	}
	p := newPlot(title, xLabel, yLabel)
	p.Add(plotter.NewGrid())
	for s := range steps {
		col := &stackColumn{bars: bars, step: s, color: colorAt(s)}
		p.Add(col)
		p.Legend.Add(steps[s], col)
	}
	p.Legend.Top, p.Legend.Left = true, true
	// Headroom above the tallest bar, so the legend covers no bar.
	_, _, _, top := (&stackColumn{bars: bars, step: len(steps) - 1}).DataRange()
	p.Y.Min, p.Y.Max = 0, top*(1+0.08*float64(len(steps)+1))
	p.X.Min, p.X.Max = 0.4, float64(len(bars))+0.6
	p.X.Tick.Marker = integerTicks{}
	return p, nil
}

// stackColumn draws one step of every bar, in data coordinates, so the bars
// keep their proportions whatever the figure's size.
type stackColumn struct {
	bars  [][]float64
	step  int
	color color.Color
}

const barWidth = 0.8 // of the distance between two bars

func (c *stackColumn) span(i int) (lo, hi float64) {
	for s := 0; s < c.step; s++ {
		lo += max(c.bars[i][s], 0)
	}
	return lo, lo + max(c.bars[i][c.step], 0)
}

func (c *stackColumn) Plot(dc draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&dc)
	for i := range c.bars {
		lo, hi := c.span(i)
		if hi <= lo {
			continue
		}
		x := float64(i + 1)
		x0, x1 := tx(x-barWidth/2), tx(x+barWidth/2)
		y0, y1 := ty(lo), ty(hi)
		dc.FillPolygon(c.color, dc.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
	}
}

func (c *stackColumn) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = 1-barWidth/2, float64(len(c.bars))+barWidth/2
	for i := range c.bars {
		_, hi := c.span(i)
		ymax = max(ymax, hi)
	}
	return xmin, xmax, 0, ymax
}

func (c *stackColumn) Thumbnail(dc *draw.Canvas) {
	r := dc.Rectangle
	dc.FillPolygon(c.color, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
}

// integerTicks labels whole numbers, 1 and multiples of a round step
// chosen so there are at most about ten labels.
type integerTicks struct{}

func (integerTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 1
	for _, s := range []int{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000} {
		step = s
		if (hi-lo)/float64(s) <= 10 {
			break
		}
	}
	var ticks []plot.Tick
	for v := 1; float64(v) <= hi; v++ {
		if float64(v) < lo {
			continue
		}
		switch {
		case v == 1 || v%step == 0:
			ticks = append(ticks, plot.Tick{Value: float64(v), Label: strconv.Itoa(v)})
		case step <= 5: // a minor tick on every bar while they are few
			ticks = append(ticks, plot.Tick{Value: float64(v)})
		}
	}
	return ticks
}
