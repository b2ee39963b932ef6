package chart

import (
	"bytes"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// run is a 10 s run with a 3-node group: n1 leads, is killed at 3 s, no
// leader until n2 wins at 3.4 s; throughput drops to zero meanwhile.
func run() Timeline {
	return Timeline{
		Title:   "leader kill",
		EndS:    10,
		Faults:  []Fault{{Name: "kill n1", StartS: 3, EndS: 5}, {Name: "partition", StartS: 7, EndS: 8}},
		Leaders: []LeaderChange{{AtS: 0, Node: 1}, {AtS: 3, Node: -1}, {AtS: 3.4, Node: 2}},
		Throughput: []Rate{{AtS: 1, Value: 900}, {AtS: 2, Value: 1000}, {AtS: 3, Value: 950}, {AtS: 4, Value: 0},
			{AtS: 5, Value: 800}, {AtS: 6, Value: 1000}, {AtS: 8, Value: 400}, {AtS: 10, Value: 1000}},
		ThroughputLabel: "commits/s",
	}
}

func TestTimelineLeaderStepsHoldUntilTheNextChange(t *testing.T) {
	s := &leaderSteps{changes: run().Leaders, endS: 10}
	// none is drawn one level below the lowest node.
	want := []struct{ x, y float64 }{{0, 1}, {3, 1}, {3, 0}, {3.4, 0}, {3.4, 2}, {10, 2}}
	got := s.points()
	if len(got) != len(want) {
		t.Fatalf("points %v, want %v", got, want)
	}
	for i := range want {
		if got[i].X != want[i].x || got[i].Y != want[i].y {
			t.Errorf("point %d is %v, want %v", i, got[i], want[i])
		}
	}
	var labels []string
	for _, tk := range (nodeTicks{name: func(n int) string { return "node" + string(rune('0'+n)) }, lo: 0, hi: 2, none: 0, hasNone: true}).Ticks(-0.5, 5) {
		labels = append(labels, tk.Label)
	}
	if len(labels) != 3 || labels[0] != "none" || labels[1] != "node1" || labels[2] != "node2" {
		t.Errorf("leader axis labels %q, want none, node1, node2 (nothing in the legend's headroom)", labels)
	}
}

func TestTimelineShadesFaultsAndNamesItsAxes(t *testing.T) {
	plots, err := TimelinePlots(run())
	if err != nil {
		t.Fatal(err)
	}
	if len(plots) != 2 {
		t.Fatalf("%d plots, want leader and throughput", len(plots))
	}
	for _, p := range plots {
		if p.X.Min != 0 || p.X.Max != 10 {
			t.Errorf("time axis %g..%g s, want the run's 0..10", p.X.Min, p.X.Max)
		}
	}

	// Draw the throughput plot and read pixels inside and outside a fault.
	const w, h = 400, 300
	c := vgimg.NewWith(vgimg.UseWH(vg.Points(w), vg.Points(h)), vgimg.UseDPI(72)) // a point is a pixel
	dc := draw.New(c)
	p := plots[1]
	p.Draw(dc)
	da := p.DataCanvas(dc)
	tx, ty := p.Transforms(&da)
	img := c.Image()
	at := func(x, y float64) color.Color {
		return img.At(int(tx(x)), h-int(ty(y)))
	}
	// Halfway up, clear of the line, the grid and the legend: inside the
	// kill, inside the partition, and in neither.
	yHigh := p.Y.Max * 0.55
	inKill, inPart, outside := at(4.5, yHigh), at(7.5, yHigh), at(6.5, yHigh)
	if sameRGB(inKill, outside) {
		t.Errorf("inside the kill %v looks like outside any fault %v: no shading", inKill, outside)
	}
	if sameRGB(inKill, inPart) {
		t.Errorf("two kinds of fault share a shade %v", inKill)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "timeline.svg")
	if err := Save(path, vg.Points(600), vg.Points(400), plots[:1], plots[1:]); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(path)
	for _, want := range []string{"leader kill", "time (s)", "commits/s", "none", "n1", "n2", "kill n1", "partition"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func sameRGB(a, b color.Color) bool {
	ar, ag, ab, _ := a.RGBA()
	br, bg, bb, _ := b.RGBA()
	return ar == br && ag == bg && ab == bb
}

func TestTimelineRefusesWhatItCannotDraw(t *testing.T) {
	for name, tl := range map[string]Timeline{
		"empty":              {Title: "t"},
		"leaders unordered":  {Leaders: []LeaderChange{{AtS: 2, Node: 1}, {AtS: 1, Node: 2}}},
		"rates unordered":    {Throughput: []Rate{{AtS: 2}, {AtS: 1}}},
		"fault ends earlier": {Leaders: []LeaderChange{{Node: 1}}, Faults: []Fault{{Name: "f", StartS: 2, EndS: 1}}},
	} {
		if _, err := TimelinePlots(tl); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Throughput alone is a plot with the title and the time axis.
	plots, err := TimelinePlots(Timeline{Title: "only rate", Throughput: []Rate{{AtS: 1, Value: 5}, {AtS: 2, Value: 6}}})
	if err != nil || len(plots) != 1 || plots[0].Title.Text != "only rate" || plots[0].X.Label.Text != "time (s)" {
		t.Errorf("throughput alone: %v, %v", plots, err)
	}
}
