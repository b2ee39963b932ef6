package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestFailoverPlotWritesPNGAndSVG(t *testing.T) {
	series := []failoverSeries{{Nodes: 3, Kind: faultKill, Faults: []faultResult{
		{FailoverNs: 360_000_000, Steps: breakdown{DetectNs: 320_000_000, PermissionNs: 8_500_000, CatchUpNs: 19_000_000, FirstCommitNs: 3_100_000, Complete: true}},
		{FailoverNs: 550_000_000},
	}}, {Nodes: 3, Kind: faultFreeze, Faults: []faultResult{{FailoverNs: 520_000_000}}}}
	dir := t.TempDir()
	if err := writeFailoverPlot(filepath.Join(dir, "f.png"), series); err != nil {
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
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 1000 {
		t.Errorf("picture is %dx%d px, want at least 1000x1000 for readable labels", b.Dx(), b.Dy())
	}
	if err := writeFailoverPlot(filepath.Join(dir, "f.svg"), series); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "f.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"detection", "permission switch", "time since the fault (ms)", "3 nodes, SIGSTOP"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the SVG has no text %q", want)
		}
	}
	if err := writeFailoverPlot(filepath.Join(dir, "f.gif"), series); err == nil {
		t.Error("a .gif path was accepted")
	}
}
