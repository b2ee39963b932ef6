package hwmon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rdmaconsensus/mu/hwmon/blklat"
)

// EBPFLatencyCollector reads the per-device latency histogram of package
// blklat, mapping kernel dev_t to the whole disk's name under
// SysfsRoot/block (I/O to a partition counts for its disk).
type EBPFLatencyCollector struct {
	SysfsRoot string
	Disabled  bool

	tracer  *blklat.Tracer
	openErr error
	tried   bool
}

func (c *EBPFLatencyCollector) Name() string { return "ebpf-blklat" }

func (c *EBPFLatencyCollector) Collect(_ context.Context, s *Snapshot) {
	if c.Disabled {
		s.Signals = append(s.Signals, SignalStatus{Name: c.Name(), Reason: "disabled by Config.DisableEBPF"})
		return
	}
	if !c.tried {
		c.tried = true
		c.tracer, c.openErr = blklat.Open()
	}
	if c.openErr != nil {
		s.Signals = append(s.Signals, unavailable(c.Name(), "raw tracepoints block_rq_issue/block_rq_complete", c.openErr))
		return
	}
	h, err := c.tracer.Read()
	if err != nil {
		s.Signals = append(s.Signals, unavailable(c.Name(), "bpf map", err))
		return
	}
	names := diskNamesByDev(filepath.Join(c.SysfsRoot, "block"))
	byDisk := map[string]*DiskLatencyHistogram{}
	var unknown uint64
	for dev, hist := range h {
		name, ok := names[fmt.Sprintf("%d:%d", dev.Major(), dev.Minor())]
		if !ok {
			for _, n := range hist.Buckets {
				unknown += n
			}
			continue
		}
		acc := byDisk[name]
		if acc == nil {
			acc = &DiskLatencyHistogram{Device: name, Buckets: make([]uint64, blklat.Buckets)}
			byDisk[name] = acc
		}
		for i, n := range hist.Buckets {
			acc.Buckets[i] += n
		}
		acc.SumNs += hist.SumNs
	}
	var disks []string
	for name, acc := range byDisk {
		s.DiskLatency = append(s.DiskLatency, *acc)
		disks = append(disks, name)
	}
	sort.Strings(disks)
	sort.Slice(s.DiskLatency, func(i, j int) bool { return s.DiskLatency[i].Device < s.DiskLatency[j].Device })
	note := "attached to block_rq_issue/block_rq_complete; devices with completions: " + strings.Join(disks, ", ")
	if len(disks) == 0 {
		note = "attached to block_rq_issue/block_rq_complete; no completions yet"
	}
	if unknown > 0 {
		note += fmt.Sprintf("; %d completions without a device (flushes) or on devices not under /sys/block", unknown)
	}
	s.Signals = append(s.Signals, SignalStatus{Name: c.Name(), Source: "raw tracepoints", Available: true, Note: note})
}

// Close detaches the programs.
func (c *EBPFLatencyCollector) Close() error {
	if c.tracer == nil {
		return nil
	}
	err := c.tracer.Close()
	c.tracer = nil
	return err
}

// diskNamesByDev maps "major:minor" of every disk and partition under dir
// to the disk's name.
func diskNamesByDev(dir string) map[string]string {
	out := map[string]string{}
	disks, _ := os.ReadDir(dir)
	for _, d := range disks {
		if v, err := readString(filepath.Join(dir, d.Name(), "dev")); err == nil {
			out[v] = d.Name()
		}
		parts, _ := os.ReadDir(filepath.Join(dir, d.Name()))
		for _, p := range parts {
			if !strings.HasPrefix(p.Name(), d.Name()) {
				continue
			}
			if v, err := readString(filepath.Join(dir, d.Name(), p.Name(), "dev")); err == nil {
				out[v] = d.Name()
			}
		}
	}
	return out
}
