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

// ThrottleCollector reads SysfsRoot/devices/system/cpu/cpu*/thermal_throttle.
type ThrottleCollector struct {
	SysfsRoot string
}

func (c *ThrottleCollector) Name() string { return "cpu-throttle" }

func (c *ThrottleCollector) Collect(_ context.Context, s *Snapshot) {
	dir := filepath.Join(c.SysfsRoot, "devices/system/cpu")
	cpus, err := ReadThrottle(dir)
	if err != nil {
		s.Signals = append(s.Signals, unavailable("cpu-throttle", dir, err))
		return
	}
	s.CPUThrottle = append(s.CPUThrottle, cpus...)
	var core, pkg uint64
	for _, c := range cpus {
		core += c.CoreCount
		pkg += c.PackageCount
	}
	s.Signals = append(s.Signals, SignalStatus{Name: "cpu-throttle", Source: dir, Available: true,
		Note: fmt.Sprintf("%d CPUs, core throttle events %d, package %d since boot", len(cpus), core, pkg)})
}

// ReadThrottle reads every cpuN/thermal_throttle under dir.
func ReadThrottle(dir string) ([]CPUThrottle, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var out []CPUThrottle
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "cpu")
		id, err := strconv.Atoi(n)
		if !ok || err != nil {
			continue
		}
		td := filepath.Join(dir, e.Name(), "thermal_throttle")
		if _, err := os.Stat(td); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		c := CPUThrottle{CPU: id}
		if c.CoreCount, err = readUint(filepath.Join(td, "core_throttle_count")); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		c.CoreTimeMs, _ = readUint(filepath.Join(td, "core_throttle_total_time_ms"))
		if v, err := readUint(filepath.Join(td, "package_throttle_count")); err == nil {
			c.PackageCount, c.HasPackageInfo = v, true
			c.PackageTimeMs, _ = readUint(filepath.Join(td, "package_throttle_total_time_ms"))
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no cpu*/thermal_throttle under %s (virtualised CPU, or not an Intel therm_throt platform)", ErrUnavailable, dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CPU < out[j].CPU })
	return out, nil
}
