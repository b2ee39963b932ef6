package hwmon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// BlockStatCollector reads /sys/block/*/stat. Latency comes from deltas of
// read/write ticks over completed I/Os between snapshots (the Arbiter does
// the subtraction), so one snapshot alone has no latency yet.
type BlockStatCollector struct {
	SysfsRoot string
}

func (c *BlockStatCollector) Name() string { return "blockstat" }

// blockSkipPrefixes are devices whose latency says nothing about hardware.
var blockSkipPrefixes = []string{"loop", "ram", "zram", "nbd", "sr", "fd"}

func (c *BlockStatCollector) Collect(_ context.Context, s *Snapshot) {
	dir := filepath.Join(c.SysfsRoot, "block")
	stats, errs, err := ReadBlockStats(dir)
	if err != nil {
		s.Signals = append(s.Signals, unavailable("blockstat", dir, err))
		return
	}
	s.Disks = append(s.Disks, stats...)
	var names []string
	for _, d := range stats {
		names = append(names, d.Device)
	}
	note := fmt.Sprintf("%d devices (%s); latency from stat deltas", len(stats), strings.Join(names, ", "))
	if len(errs) > 0 {
		note += "; unreadable: " + strings.Join(errs, "; ")
	}
	st := SignalStatus{Name: "blockstat", Source: dir, Available: len(stats) > 0, Note: note}
	if len(stats) == 0 {
		st.Reason = "no block device with a readable stat file"
		if len(errs) > 0 {
			st.Reason += ": " + strings.Join(errs, "; ")
		}
		st.Note = ""
	}
	s.Signals = append(s.Signals, st)
}

// ReadBlockStats parses dir/<dev>/stat for every device not in
// blockSkipPrefixes. Per-device failures are returned as messages; only a
// missing dir is an error.
func ReadBlockStats(dir string) ([]DiskStat, []string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s does not exist", ErrUnavailable, dir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var out []DiskStat
	var errs []string
next:
	for _, e := range ents {
		for _, p := range blockSkipPrefixes {
			if strings.HasPrefix(e.Name(), p) {
				continue next
			}
		}
		path := filepath.Join(dir, e.Name(), "stat")
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		d, err := ParseBlockStat(e.Name(), string(b))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, errs, nil
}

// ParseBlockStat parses the fields of Documentation/block/stat.rst: read
// I/Os, read merges, read sectors, read ticks, write I/Os, write merges,
// write sectors, write ticks, in_flight, io_ticks, ... (at least 11).
func ParseBlockStat(dev, line string) (DiskStat, error) {
	f := strings.Fields(line)
	if len(f) < 11 {
		return DiskStat{}, fmt.Errorf("has %d fields, want at least 11", len(f))
	}
	var v [11]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return DiskStat{}, fmt.Errorf("field %d %q: %w", i+1, f[i], err)
		}
		v[i] = n
	}
	return DiskStat{Device: dev, ReadIOs: v[0], ReadTicksMs: v[3], WriteIOs: v[4], WriteTicks: v[7], InFlight: v[8], IOTicksMs: v[9]}, nil
}
