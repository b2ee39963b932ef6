package chart

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

func TestSaveWritesPNGAndSVGAndRefusesOthers(t *testing.T) {
	bars, err := StackedBars("steps", "event", "time (ms)", []string{"first", "second"}, [][]float64{{1, 2}, {3, 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	cdf, err := CDF("distribution", "time (ms)", []Series{{Name: "a", Values: []float64{3, 1, 2}}, {Name: "empty"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Save(filepath.Join(dir, "f.png"), vg.Points(400), vg.Points(400), []*plot.Plot{bars}, []*plot.Plot{cdf}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "f.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 800 || b.Dy() != 800 { // 400 pt at 144 dpi
		t.Errorf("PNG is %dx%d px, want 800x800", b.Dx(), b.Dy())
	}
	if err := Save(filepath.Join(dir, "f.svg"), vg.Points(400), vg.Points(400), []*plot.Plot{bars, cdf}); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "f.svg"))
	for _, want := range []string{"first", "second", "time (ms)", "fraction at or below"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if err := Save(filepath.Join(dir, "f.bmp"), vg.Points(100), vg.Points(100), []*plot.Plot{bars}); err == nil {
		t.Error(".bmp accepted")
	}
}

func TestStackedBarsRefusesRaggedRows(t *testing.T) {
	if _, err := StackedBars("t", "x", "y", []string{"a", "b"}, [][]float64{{1}}); err == nil {
		t.Error("a bar with one value for two steps was accepted")
	}
}

func TestPercentileTicksAreNamedPercentiles(t *testing.T) {
	var got []string
	for _, tk := range (percentileTicks{}).Ticks(1, 1000) {
		got = append(got, tk.Label)
	}
	want := []string{"0%", "50%", "90%", "99%", "99.9%"}
	if len(got) != len(want) {
		t.Fatalf("ticks %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("tick %d is %q, want %q", i, got[i], want[i])
		}
	}
	if _, err := Percentiles("t", "latency (µs)", []PercentileSeries{{Name: "none", Quantiles: []Quantile{{Percentile: 100, Value: 1}}}}); err == nil {
		t.Error("a series with nothing drawable was accepted")
	}
}

func TestDurationUnit(t *testing.T) {
	for _, c := range []struct {
		ns   float64
		unit string
	}{{900_000, "µs"}, {5e6, "ms"}, {3e10, "s"}} {
		if _, u := DurationUnit(c.ns); u != c.unit {
			t.Errorf("%g ns: %s, want %s", c.ns, u, c.unit)
		}
	}
}

func TestPlainTicksAreRoundAndPlain(t *testing.T) {
	var labels []string
	for _, tk := range (plainTicks{}).Ticks(0, 27000) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	want := []string{"0", "5000", "10000", "15000", "20000", "25000"}
	if len(labels) != len(want) {
		t.Fatalf("labels %v, want %v", labels, want)
	}
	for i := range want {
		if labels[i] != want[i] {
			t.Errorf("label %d is %q, want %q", i, labels[i], want[i])
		}
	}
	for _, tk := range (plainTicks{}).Ticks(0, 0.7) {
		if tk.Label == "0.30000000000000004" {
			t.Error("a label carries float noise")
		}
	}
}

func TestGroupedBarsLabelsBarsAndLogTicks(t *testing.T) {
	label := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "u" }
	p, err := GroupedBars("steps", "time (log scale)", []string{"detection", "commit"},
		[]BarSeries{{Name: "sim", Values: []float64{200, 16}}, {Name: "rxe", Values: []float64{300000, math.NaN()}}}, true, label)
	if err != nil {
		t.Fatal(err)
	}
	if p.Y.Min != 10 || p.Y.Max <= 300000 {
		t.Errorf("value axis %g..%g: want from the decade below the least bar to above the tallest", p.Y.Min, p.Y.Max)
	}
	path := filepath.Join(t.TempDir(), "g.svg")
	if err := Save(path, vg.Points(500), vg.Points(300), []*plot.Plot{p}); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(path)
	for _, want := range []string{"detection", "commit", "sim", "rxe", "200u", "300000u", "16u", ">1000u<"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if bytes.Contains(svg, []byte("NaNu")) {
		t.Error("a missing value was drawn")
	}
	for name, s := range map[string][]BarSeries{
		"ragged":     {{Name: "a", Values: []float64{1}}},
		"nothing >0": {{Name: "a", Values: []float64{0, -1}}},
		"no series":  nil,
	} {
		if _, err := GroupedBars("t", "y", []string{"x", "y"}, s, true, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
