package chart_test

import (
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/rdmaconsensus/mu/internal/chart"
)

// A fault-injection run drawn as a timeline: the leader over time as a
// step line, throughput below it, both with the faults shaded, on one
// time axis in seconds.
func ExampleTimelinePlots() {
	plots, err := chart.TimelinePlots(chart.Timeline{
		Title:           "partition of the leader",
		Faults:          []chart.Fault{{Name: "partition n1 | n2 n3", StartS: 2, EndS: 5}},
		Leaders:         []chart.LeaderChange{{AtS: 0, Node: 1}, {AtS: 2.1, Node: -1}, {AtS: 2.3, Node: 2}},
		Throughput:      []chart.Rate{{AtS: 1, Value: 900}, {AtS: 2, Value: 880}, {AtS: 3, Value: 450}, {AtS: 4, Value: 910}, {AtS: 6, Value: 905}},
		ThroughputLabel: "commits/s",
		EndS:            6,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// One plot a row: Save lines up their time axes.
	var rows [][]*plot.Plot
	for _, p := range plots {
		rows = append(rows, []*plot.Plot{p})
	}
	dir, _ := os.MkdirTemp("", "timeline")
	defer os.RemoveAll(dir)
	err = chart.Save(filepath.Join(dir, "run.svg"), vg.Points(600), vg.Points(400), rows...)
	fmt.Println(len(plots), "plots saved:", err == nil)
	// Output: 2 plots saved: true
}
