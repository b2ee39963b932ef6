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

func TestBenchPlotRedrawsFromSavedData(t *testing.T) {
	dir := t.TempDir()
	series := []failoverSeries{{Nodes: 3, Kind: faultFreeze, Faults: []faultResult{
		{FailoverNs: 2_500_000_000, Steps: breakdown{DetectNs: 2e9, PermissionNs: 1e8, CatchUpNs: 1e8, FirstCommitNs: 1e8, Complete: true}}}}}
	if err := writeFailoverPlot(filepath.Join(dir, "f.png"), series); err != nil {
		t.Fatal(err)
	}
	h := newLatencyHist()
	for i := int64(1); i <= 10; i++ {
		h.RecordValue(25_000 * i)
	}
	if err := writeLatencyPlot(filepath.Join(dir, "l.png"), "latency", []latencySeries{{Name: "raw", Hist: h}}); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{"f.json", "l.json"} {
		cmd := newBenchPlotCmd()
		out := filepath.Join(dir, "re-"+data+".svg")
		cmd.SetArgs([]string{filepath.Join(dir, data), "--out", out})
		cmd.SetOut(new(bytes.Buffer))
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		svg, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if data == "f.json" && (!bytes.Contains(svg, []byte("3 nodes, SIGSTOP")) || !bytes.Contains(svg, []byte(">2000<"))) {
			t.Errorf("the redrawn failover figure lacks its series name or a plain 2000 ms tick")
		}
	}
}

func TestFailoverComparisonDrawsEachSourcesStepMedians(t *testing.T) {
	dir := t.TempDir()
	sim := plotData{Kind: "failover", Source: "simulator", Failover: []failoverData{{Nodes: 3, Fault: "SIGKILL", Failovers: []failoverPoint{
		{FailoverNs: 500_000, DetectNs: 200_000, PermissionNs: 175_000, CatchUpNs: 110_000, FirstCommitNs: 15_000, Complete: true},
		{FailoverNs: 540_000, DetectNs: 240_000, PermissionNs: 175_000, CatchUpNs: 110_000, FirstCommitNs: 15_000, Complete: true},
		{FailoverNs: 900_000, DetectNs: 250_000, PermissionNs: 175_000, CatchUpNs: 110_000, FirstCommitNs: 15_000, Complete: true},
	}}}}
	rxe := plotData{Kind: "failover", Failover: []failoverData{{Nodes: 3, Fault: "SIGKILL", Failovers: []failoverPoint{
		{FailoverNs: 360_000_000, DetectNs: 321_000_000, PermissionNs: 8_500_000, CatchUpNs: 18_900_000, FirstCommitNs: 3_100_000, Complete: true},
		{FailoverNs: 2_000_000_000}, // steps not recorded: counts in the whole failover only
	}}}}
	if m, complete, all := stepMedians(sim.Failover[0]); m[0] != 240_000 || m[4] != 540_000 || complete != 3 || all != 3 {
		t.Errorf("simulator medians %v over %d/%d", m, complete, all)
	}
	if m, complete, all := stepMedians(rxe.Failover[0]); m[0] != 321_000_000 || m[4] != 360_000_000 || complete != 1 || all != 2 {
		t.Errorf("rxe medians %v over %d/%d", m, complete, all)
	}
	path := filepath.Join(dir, "c.svg")
	err := drawFailoverComparison(path, 3, []string{"SIGKILL"}, []namedFailovers{{Name: sourceName(nil, 0, sim, "s.json"), Data: sim},
		{Name: sourceName([]string{"", "Soft-RoCE"}, 1, rxe, "r.json"), Data: rxe}})
	if err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(path)
	for _, want := range []string{"3 nodes, SIGKILL", "simulator (3 failovers, steps of 3)", "Soft-RoCE (2 failovers, steps of 1)",
		"detection", "permission switch", "whole failover", "240µs", "321ms"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("comparison lacks %q", want)
		}
	}
	if err := drawFailoverComparison(path, 5, []string{"SIGKILL"}, []namedFailovers{{Name: "sim", Data: sim}}); err == nil {
		t.Error("a group size no file has was accepted")
	}
}
