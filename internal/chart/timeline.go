package chart

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Fault is a fault injected during a run: from StartS to EndS seconds after
// the run began. Faults of the same Name share a colour and a legend entry.
type Fault struct {
	Name         string
	StartS, EndS float64
}

// LeaderChange says that from AtS seconds on, Node led (Node < 0: no node
// led, or none was known).
type LeaderChange struct {
	AtS  float64
	Node int
}

// Rate is a throughput sample: Value (in the unit of the throughput axis)
// over the interval ending AtS seconds after the run began.
type Rate struct {
	AtS   float64
	Value float64
}

// Timeline is one run as it unfolded: the faults injected, who led, and
// how much got done.
type Timeline struct {
	Title string
	// EndS is when the run ended; the last leader holds until then. Zero:
	// the latest time any field names.
	EndS       float64
	Faults     []Fault
	Leaders    []LeaderChange // in time order
	Throughput []Rate         // in time order
	// ThroughputLabel names the throughput axis with its unit, such as
	// "commits/s".
	ThroughputLabel string
	// NodeName labels a node on the leader axis; nil: "n<id>".
	NodeName func(node int) string
}

// TimelinePlots draws a run as two plots over one time axis in seconds, to
// be saved as two rows (Save aligns them): on top the leader as a step line
// (one level per node, "none" below them), below it the throughput as a
// line; in both, each fault is a shaded span. A timeline without leaders or
// without throughput leaves that plot out.
func TimelinePlots(t Timeline) ([]*plot.Plot, error) {
	if len(t.Leaders) == 0 && len(t.Throughput) == 0 {
		return nil, fmt.Errorf("chart: %s: neither leaders nor throughput to draw", t.Title)
	}
	if !slices.IsSortedFunc(t.Leaders, func(a, b LeaderChange) int { return cmpFloat(a.AtS, b.AtS) }) {
		return nil, fmt.Errorf("chart: %s: leader changes out of time order", t.Title)
	}
	if !slices.IsSortedFunc(t.Throughput, func(a, b Rate) int { return cmpFloat(a.AtS, b.AtS) }) {
		return nil, fmt.Errorf("chart: %s: throughput samples out of time order", t.Title)
	}
	for _, f := range t.Faults {
		if !(f.EndS >= f.StartS) {
			return nil, fmt.Errorf("chart: %s: fault %q ends (%g s) before it starts (%g s)", t.Title, f.Name, f.EndS, f.StartS)
		}
	}
	end := t.EndS
	if end == 0 {
		for _, f := range t.Faults {
			end = max(end, f.EndS)
		}
		if n := len(t.Leaders); n > 0 {
			end = max(end, t.Leaders[n-1].AtS)
		}
		if n := len(t.Throughput); n > 0 {
			end = max(end, t.Throughput[n-1].AtS)
		}
	}
	start := 0.0
	if len(t.Leaders) > 0 {
		start = min(start, t.Leaders[0].AtS)
	}
	if len(t.Throughput) > 0 {
		start = min(start, t.Throughput[0].AtS)
	}
	if !(end > start) {
		end = start + 1
	}
	spans := newFaultSpans(t.Faults)

	var plots []*plot.Plot
	if len(t.Leaders) > 0 {
		p := newPlot(t.Title, "time (s)", "leader")
		if len(t.Throughput) > 0 {
			p.X.Label.Text = "" // the throughput plot below names the shared axis
		}
		p.Add(plotter.NewGrid(), spans)
		steps := &leaderSteps{changes: t.Leaders, endS: end}
		p.Add(steps)
		p.Legend.Add("leader", steps)
		spans.addLegend(p)
		lo, hi := steps.nodeRange()
		name := t.NodeName
		if name == nil {
			name = func(n int) string { return "n" + strconv.Itoa(n) }
		}
		p.Y.Tick.Marker = nodeTicks{name: name, lo: lo, hi: hi, none: steps.noLeader(), hasNone: steps.anyNone()}
		// Room above the top node for the legend.
		p.Y.Min, p.Y.Max = lo-0.5, hi+0.5+0.6*float64(1+len(spans.names))
		p.Legend.Top, p.Legend.Left = true, true
		plots = append(plots, p)
	}
	if len(t.Throughput) > 0 {
		title := ""
		if len(plots) == 0 {
			title = t.Title
		}
		label := t.ThroughputLabel
		if label == "" {
			label = "throughput"
		}
		p := newPlot(title, "time (s)", label)
		p.Add(plotter.NewGrid(), spans)
		pts := make(plotter.XYs, len(t.Throughput))
		top := 0.0
		for i, r := range t.Throughput {
			pts[i] = plotter.XY{X: r.AtS, Y: r.Value}
			top = max(top, r.Value)
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = colorAt(0), vg.Points(1.5)
		p.Add(l)
		p.Legend.Add("throughput", l)
		spans.addLegend(p)
		if top <= 0 {
			top = 1
		}
		p.Y.Min, p.Y.Max = 0, top*(1+0.1*float64(2+len(spans.names)))
		p.Legend.Top, p.Legend.Left = true, true
		plots = append(plots, p)
	}
	for _, p := range plots {
		p.X.Min, p.X.Max = start, end
	}
	return plots, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// faultShade is how opaque a fault's span is: light enough that the lines
// drawn over it stay legible.
const faultShade = 0x40

// faultSpans shades each fault's interval over the plot's whole height.
// Colours are taken from the end of the palette, away from the lines'.
type faultSpans struct {
	faults []Fault
	names  []string // distinct, in first-seen order
}

func newFaultSpans(faults []Fault) *faultSpans {
	s := &faultSpans{faults: faults}
	for _, f := range faults {
		if !slices.Contains(s.names, f.Name) {
			s.names = append(s.names, f.Name)
		}
	}
	return s
}

func (s *faultSpans) color(name string) color.Color {
	c := Palette[(len(Palette)-1-slices.Index(s.names, name)+len(Palette))%len(Palette)]
	c.A = faultShade
	// draw fills with premultiplied colour.
	c.R, c.G, c.B = uint8(uint16(c.R)*faultShade/0xff), uint8(uint16(c.G)*faultShade/0xff), uint8(uint16(c.B)*faultShade/0xff)
	return c
}

func (s *faultSpans) Plot(dc draw.Canvas, p *plot.Plot) {
	tx, _ := p.Transforms(&dc)
	for _, f := range s.faults {
		x0, x1 := tx(f.StartS), tx(f.EndS)
		if x1-x0 < vg.Points(1) { // an instantaneous fault still shows
			x1 = x0 + vg.Points(1)
		}
		y0, y1 := dc.Min.Y, dc.Max.Y
		dc.FillPolygon(s.color(f.Name), dc.ClipPolygonX([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
	}
}

func (s *faultSpans) addLegend(p *plot.Plot) {
	for _, n := range s.names {
		p.Legend.Add(n, swatch{s.color(n)})
	}
}

// swatch is a legend entry's filled square.
type swatch struct{ c color.Color }

func (w swatch) Thumbnail(dc *draw.Canvas) {
	r := dc.Rectangle
	dc.FillPolygon(w.c, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
}

// noLeader is the level drawn for "no leader", one below the lowest node.
func (l *leaderSteps) noLeader() float64 {
	lo := math.Inf(1)
	for _, c := range l.changes {
		if c.Node >= 0 {
			lo = min(lo, float64(c.Node))
		}
	}
	if math.IsInf(lo, 1) {
		return -1
	}
	return lo - 1
}

func (l *leaderSteps) anyNone() bool {
	return slices.ContainsFunc(l.changes, func(c LeaderChange) bool { return c.Node < 0 })
}

// leaderSteps draws who led as a step line: a level per node, held until
// the next change (the last until the end of the run).
type leaderSteps struct {
	changes []LeaderChange
	endS    float64
}

func (l *leaderSteps) level(c LeaderChange) float64 {
	if c.Node < 0 {
		return l.noLeader()
	}
	return float64(c.Node)
}

func (l *leaderSteps) nodeRange() (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, c := range l.changes {
		v := l.level(c)
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

func (l *leaderSteps) points() plotter.XYs {
	var pts plotter.XYs
	for i, c := range l.changes {
		until := l.endS
		if i+1 < len(l.changes) {
			until = l.changes[i+1].AtS
		}
		y := l.level(c)
		pts = append(pts, plotter.XY{X: c.AtS, Y: y}, plotter.XY{X: until, Y: y})
	}
	return pts
}

func (l *leaderSteps) style() draw.LineStyle {
	return draw.LineStyle{Color: color.Black, Width: vg.Points(2)}
}

func (l *leaderSteps) Plot(dc draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&dc)
	pts := l.points()
	line := make([]vg.Point, len(pts))
	for i, pt := range pts {
		line[i] = vg.Point{X: tx(pt.X), Y: ty(pt.Y)}
	}
	dc.StrokeLines(l.style(), dc.ClipLinesXY(line)...)
}

func (l *leaderSteps) DataRange() (xmin, xmax, ymin, ymax float64) {
	lo, hi := l.nodeRange()
	return l.changes[0].AtS, l.endS, lo, hi
}

func (l *leaderSteps) Thumbnail(dc *draw.Canvas) {
	y := (dc.Min.Y + dc.Max.Y) / 2
	dc.StrokeLine2(l.style(), dc.Min.X, y, dc.Max.X, y)
}

// nodeTicks label each level from lo to hi that a node could hold with its
// name, and the no-leader level, if one was drawn, "none"; the headroom
// above hi (for the legend) has no label.
type nodeTicks struct {
	name    func(int) string
	lo, hi  float64
	none    float64
	hasNone bool
}

func (n nodeTicks) Ticks(_, _ float64) []plot.Tick {
	var ticks []plot.Tick
	for v := n.lo; v <= n.hi; v++ {
		switch {
		case n.hasNone && v == n.none:
			ticks = append(ticks, plot.Tick{Value: v, Label: "none"})
		case v >= 0:
			ticks = append(ticks, plot.Tick{Value: v, Label: n.name(int(v))})
		}
	}
	return ticks
}
