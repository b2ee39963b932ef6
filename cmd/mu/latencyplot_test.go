package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestLatencyPlotHasPercentileAxis(t *testing.T) {
	commit, raw := newLatencyHist(), newLatencyHist()
	for i := int64(1); i <= 1000; i++ {
		commit.RecordValue(600_000 + i*i*10)
		raw.RecordValue(25_000 + i*100)
	}
	dir := t.TempDir()
	series := []latencySeries{{Name: "commit, 64 B", Hist: commit}, {Name: "raw write, 64 B", Hist: raw}}
	for _, name := range []string{"l.png", "l.svg"} {
		if err := writeLatencyPlot(filepath.Join(dir, name), "commit latency", series); err != nil {
			t.Fatal(err)
		}
	}
	svg, err := os.ReadFile(filepath.Join(dir, "l.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"50%", "99%", "99.9%", "latency (ms)", "commit, 64 B (1000 samples)"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the SVG has no text %q", want)
		}
	}
	if q := percentilePoints(commit, 1); q[len(q)-1].Percentile < 99.8 || q[len(q)-1].Percentile >= 99.9+1e-9 {
		t.Errorf("1000 samples resolve up to p%.3f, want about p99.9", q[len(q)-1].Percentile)
	}
}
