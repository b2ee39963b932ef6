package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"
)

// A benchmark's figure is saved with the data it is drawn from (the same
// path, .json), so `mu bench plot` redraws it, in another size or format
// or after a change to the drawing, without measuring again.

type plotData struct {
	Kind  string `json:"kind"` // "failover" or "latency"
	Title string `json:"title,omitempty"`
	// Source says where the data was measured (bench/simfailover sets it:
	// the simulator); figures name it.
	Source   string         `json:"source,omitempty"`
	Failover []failoverData `json:"failover,omitempty"`
	Latency  []latencyData  `json:"latency,omitempty"`
}

type failoverData struct {
	Nodes     int             `json:"nodes"`
	Fault     string          `json:"fault"` // SIGKILL or SIGSTOP
	Failovers []failoverPoint `json:"failovers"`
}

type failoverPoint struct {
	FailoverNs    int64 `json:"failover_ns"`
	DetectNs      int64 `json:"detect_ns,omitempty"`
	PermissionNs  int64 `json:"permission_ns,omitempty"`
	CatchUpNs     int64 `json:"catch_up_ns,omitempty"`
	FirstCommitNs int64 `json:"first_commit_ns,omitempty"`
	Complete      bool  `json:"complete"` // every step was observed
}

type latencyData struct {
	Panel string `json:"panel,omitempty"`
	Name  string `json:"name"`
	// Hist is the HdrHistogram (ns) in its V2 compressed encoding.
	Hist string `json:"hdr_histogram_v2"`
}

func dataPath(figurePath string) string {
	return strings.TrimSuffix(figurePath, filepath.Ext(figurePath)) + ".json"
}

func writePlotData(figurePath string, d plotData) error {
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(dataPath(figurePath), append(b, '\n'), 0o644)
}

func failoverPlotData(series []failoverSeries) plotData {
	d := plotData{Kind: "failover"}
	for _, s := range series {
		fd := failoverData{Nodes: s.Nodes, Fault: s.Kind.String()}
		for _, f := range s.Faults {
			b := f.Steps
			fd.Failovers = append(fd.Failovers, failoverPoint{FailoverNs: f.FailoverNs, DetectNs: b.DetectNs, PermissionNs: b.PermissionNs,
				CatchUpNs: b.CatchUpNs, FirstCommitNs: b.FirstCommitNs, Complete: b.Complete})
		}
		d.Failover = append(d.Failover, fd)
	}
	return d
}

func latencyPlotData(title string, series []latencySeries) (plotData, error) {
	d := plotData{Kind: "latency", Title: title}
	for _, s := range series {
		b, err := s.Hist.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			return d, err
		}
		d.Latency = append(d.Latency, latencyData{Panel: s.Panel, Name: s.Name, Hist: string(b)})
	}
	return d, nil
}

// redraw draws d's figure to path (.png or .svg).
func (d plotData) redraw(path string) error {
	switch d.Kind {
	case "failover":
		var series []failoverSeries
		for _, fd := range d.Failover {
			s := failoverSeries{Nodes: fd.Nodes, Kind: faultKill}
			if fd.Fault == faultFreeze.String() {
				s.Kind = faultFreeze
			}
			for _, p := range fd.Failovers {
				s.Faults = append(s.Faults, faultResult{FailoverNs: p.FailoverNs, Steps: breakdown{DetectNs: p.DetectNs,
					PermissionNs: p.PermissionNs, CatchUpNs: p.CatchUpNs, FirstCommitNs: p.FirstCommitNs, Complete: p.Complete}})
			}
			series = append(series, s)
		}
		return drawFailoverPlot(path, d.Source, series)
	case "latency":
		var series []latencySeries
		for _, l := range d.Latency {
			h, err := hdrhistogram.Decode([]byte(l.Hist))
			if err != nil {
				return fmt.Errorf("%s: %w", l.Name, err)
			}
			series = append(series, latencySeries{Panel: l.Panel, Name: l.Name, Hist: h})
		}
		return drawLatencyPlot(path, d.Title, series)
	}
	return fmt.Errorf("plot data of kind %q: want failover or latency", d.Kind)
}

func readPlotData(path string) (plotData, error) {
	var d plotData
	b, err := os.ReadFile(path)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

func newBenchPlotCmd() *cobra.Command {
	var (
		out     string
		compare bool
		nodes   int
		faults  string
		names   []string
	)
	c := &cobra.Command{
		Use:   "plot DATA.json | plot --compare DATA.json DATA.json...",
		Short: "redraw a benchmark's figure from the data saved beside it, or compare failover steps",
		Long: `plot redraws the figure of bench failover --png or bench replicate --plot from
the .json file written beside it, to --out (.png or .svg; default: the
data's path with .png).

With --compare it takes two or more failover data files (bench failover's,
or bench/simfailover -plot-data's) and draws, per --faults, the median of
each failover step of every file's --nodes series side by side on a log
scale; --name, once per file, names its bars (default: the source a file records,
else its name).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !compare && len(args) != 1 {
				return fmt.Errorf("plot takes one data file (%d given); --compare takes several", len(args))
			}
			if out == "" {
				out = strings.TrimSuffix(args[0], filepath.Ext(args[0])) + ".png"
				if compare {
					return fmt.Errorf("--compare needs --out")
				}
			}
			if compare {
				if len(args) < 2 {
					return fmt.Errorf("--compare needs at least two data files")
				}
				var sources []namedFailovers
				for i, a := range args {
					d, err := readPlotData(a)
					if err != nil {
						return err
					}
					if d.Kind != "failover" {
						return fmt.Errorf("%s: plot data of kind %q, --compare wants failover", a, d.Kind)
					}
					sources = append(sources, namedFailovers{Name: sourceName(names, i, d, a), Data: d})
				}
				var fs []string
				for _, f := range strings.Split(faults, ",") {
					fs = append(fs, strings.TrimSpace(f))
				}
				if err := drawFailoverComparison(out, nodes, fs, sources); err != nil {
					return err
				}
			} else {
				d, err := readPlotData(args[0])
				if err != nil {
					return err
				}
				if err := d.redraw(out); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "plot: %s\n", out)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "figure to write, .png or .svg")
	c.Flags().BoolVar(&compare, "compare", false, "compare the failover steps of several data files")
	c.Flags().IntVar(&nodes, "nodes", 3, "with --compare: the group size whose series are compared")
	c.Flags().StringVar(&faults, "faults", "SIGKILL,SIGSTOP", "with --compare: the faults compared, one plot each")
	c.Flags().StringArrayVar(&names, "name", nil, "with --compare: a file's name in the legend, once per file, in order")
	return c
}
