package hwmon

import (
	"fmt"
	"time"
)

// Thresholds are the decision table's numbers (docs/decisions.md). Zero
// values are not defaults: start from DefaultThresholds.
type Thresholds struct {
	// Memory corrected errors, counted over MemoryCEWindow and scaled to a day.
	MemoryCEWarnPerDay     float64
	MemoryCECriticalPerDay float64
	MemoryCEWindow         time.Duration

	// Disk latency p99 as a multiple of the device's own baseline.
	DiskP99WarnRatio     float64
	DiskP99CriticalRatio float64
	// DiskLatencyFloor: a p99 below this is never flagged, whatever the
	// ratio, so an idle NVMe going from 20 µs to 300 µs is not fail-slow.
	DiskLatencyFloor time.Duration
	// DiskWindow is the sliding window the p99 is taken over.
	DiskWindow time.Duration
	// DiskBaselineSamples: the baseline is the median of the first this many
	// intervals that saw I/O.
	DiskBaselineSamples int
	// DiskSustainedFor: critical for this long escalates degrade to fence.
	DiskSustainedFor time.Duration

	// ATA attribute 5 raw value.
	ReallocatedWarn     uint64
	ReallocatedCritical uint64

	// Link symbol errors (RDMA symbol_error, Ethernet CRC/frame errors)
	// counted over LinkWindow and scaled to an hour. Warn 0 means "rising".
	SymbolErrorWarnPerHour     float64
	SymbolErrorCriticalPerHour float64
	LinkWindow                 time.Duration

	// Probe (empty entry) completion latency p99.
	ProbeLatencyWarn     time.Duration
	ProbeLatencyCritical time.Duration

	// HysteresisClearRatio: a row leaves a level only when its value falls
	// to this fraction of the level's threshold, so a value hovering at the
	// threshold does not flap the verdict.
	HysteresisClearRatio float64
}

// DefaultThresholds returns the decision table's defaults (docs/decisions.md).
func DefaultThresholds() Thresholds {
	return Thresholds{
		MemoryCEWarnPerDay:         10,
		MemoryCECriticalPerDay:     100,
		MemoryCEWindow:             24 * time.Hour,
		DiskP99WarnRatio:           5,
		DiskP99CriticalRatio:       10,
		DiskLatencyFloor:           time.Millisecond,
		DiskWindow:                 time.Minute,
		DiskBaselineSamples:        30,
		DiskSustainedFor:           time.Minute,
		ReallocatedWarn:            10,
		ReallocatedCritical:        100,
		SymbolErrorWarnPerHour:     0,
		SymbolErrorCriticalPerHour: 1000,
		LinkWindow:                 time.Hour,
		ProbeLatencyWarn:           10 * time.Millisecond,
		ProbeLatencyCritical:       50 * time.Millisecond,
		HysteresisClearRatio:       0.8,
	}
}

// Validate says which field is wrong and why.
func (t Thresholds) Validate() error {
	bad := func(field, why string, args ...any) error {
		return fmt.Errorf("%w: Thresholds.%s %s", ErrInvalidConfig, field, fmt.Sprintf(why, args...))
	}
	switch {
	case t.MemoryCEWarnPerDay < 0:
		return bad("MemoryCEWarnPerDay", "is %v, must be >= 0", t.MemoryCEWarnPerDay)
	case t.MemoryCECriticalPerDay <= t.MemoryCEWarnPerDay:
		return bad("MemoryCECriticalPerDay", "(%v) must exceed MemoryCEWarnPerDay (%v)", t.MemoryCECriticalPerDay, t.MemoryCEWarnPerDay)
	case t.MemoryCEWindow < time.Minute:
		return bad("MemoryCEWindow", "is %v, must be at least 1m", t.MemoryCEWindow)
	case t.DiskP99WarnRatio <= 1:
		return bad("DiskP99WarnRatio", "is %v, must exceed 1", t.DiskP99WarnRatio)
	case t.DiskP99CriticalRatio <= t.DiskP99WarnRatio:
		return bad("DiskP99CriticalRatio", "(%v) must exceed DiskP99WarnRatio (%v)", t.DiskP99CriticalRatio, t.DiskP99WarnRatio)
	case t.DiskLatencyFloor < 0:
		return bad("DiskLatencyFloor", "is %v, must be >= 0", t.DiskLatencyFloor)
	case t.DiskWindow <= 0:
		return bad("DiskWindow", "is %v, must be > 0", t.DiskWindow)
	case t.DiskBaselineSamples < 1:
		return bad("DiskBaselineSamples", "is %d, must be >= 1", t.DiskBaselineSamples)
	case t.DiskSustainedFor <= 0:
		return bad("DiskSustainedFor", "is %v, must be > 0", t.DiskSustainedFor)
	case t.ReallocatedCritical <= t.ReallocatedWarn:
		return bad("ReallocatedCritical", "(%d) must exceed ReallocatedWarn (%d)", t.ReallocatedCritical, t.ReallocatedWarn)
	case t.SymbolErrorWarnPerHour < 0:
		return bad("SymbolErrorWarnPerHour", "is %v, must be >= 0", t.SymbolErrorWarnPerHour)
	case t.SymbolErrorCriticalPerHour <= t.SymbolErrorWarnPerHour:
		return bad("SymbolErrorCriticalPerHour", "(%v) must exceed SymbolErrorWarnPerHour (%v)", t.SymbolErrorCriticalPerHour, t.SymbolErrorWarnPerHour)
	case t.LinkWindow < time.Second:
		return bad("LinkWindow", "is %v, must be at least 1s", t.LinkWindow)
	case t.ProbeLatencyWarn <= 0:
		return bad("ProbeLatencyWarn", "is %v, must be > 0", t.ProbeLatencyWarn)
	case t.ProbeLatencyCritical <= t.ProbeLatencyWarn:
		return bad("ProbeLatencyCritical", "(%v) must exceed ProbeLatencyWarn (%v)", t.ProbeLatencyCritical, t.ProbeLatencyWarn)
	case t.HysteresisClearRatio <= 0 || t.HysteresisClearRatio > 1:
		return bad("HysteresisClearRatio", "is %v, must be in (0, 1]", t.HysteresisClearRatio)
	}
	return nil
}

// Config says where the collectors read from and how the arbiter decides.
// Roots are configurable so tests run against fixture trees.
type Config struct {
	// SysfsRoot is where sysfs is mounted ("/sys").
	SysfsRoot string
	// RasdaemonDB is rasdaemon's SQLite database; "" disables the collector
	// (it is then listed as unavailable, not silently healthy).
	RasdaemonDB string
	// RasdaemonLookback bounds which rasdaemon events count.
	RasdaemonLookback time.Duration
	// SmartctlPath is the smartctl binary (looked up in PATH if bare).
	SmartctlPath string
	// SmartDevices to query; empty means every whole disk under
	// SysfsRoot/block except loop, ram, zram and device-mapper.
	SmartDevices []string
	// SmartTimeout bounds one smartctl run.
	SmartTimeout time.Duration
	// SmartInterval: SMART changes slowly and smartctl wakes disks, so the
	// Monitor reruns it only this often and reuses the last answer between.
	SmartInterval time.Duration
	// DisableEBPF skips the eBPF latency histogram.
	DisableEBPF bool
	// DisableNetlink skips the rtnetlink collector.
	DisableNetlink bool
	// Interval is the Monitor's collection cadence.
	Interval time.Duration
	// OnceSpan is how long CollectOnce waits between its two samples, so
	// that delta-based signals (disk latency) have something to say.
	OnceSpan time.Duration

	Thresholds Thresholds
	FailSlow   FailSlowConfig
}

// DefaultConfig reads the real machine with the seed's thresholds.
func DefaultConfig() Config {
	return Config{
		SysfsRoot:         "/sys",
		RasdaemonDB:       "/var/lib/rasdaemon/ras-mc_event.db",
		RasdaemonLookback: 24 * time.Hour,
		SmartctlPath:      "smartctl",
		SmartTimeout:      10 * time.Second,
		SmartInterval:     5 * time.Minute,
		Interval:          time.Second,
		OnceSpan:          time.Second,
		Thresholds:        DefaultThresholds(),
		FailSlow:          DefaultFailSlowConfig(),
	}
}

// Validate says which field is wrong and why.
func (c Config) Validate() error {
	bad := func(field, why string, args ...any) error {
		return fmt.Errorf("%w: Config.%s %s", ErrInvalidConfig, field, fmt.Sprintf(why, args...))
	}
	switch {
	case c.SysfsRoot == "":
		return bad("SysfsRoot", "is empty; use \"/sys\"")
	case c.RasdaemonDB != "" && c.RasdaemonLookback <= 0:
		return bad("RasdaemonLookback", "is %v, must be > 0", c.RasdaemonLookback)
	case c.SmartTimeout <= 0:
		return bad("SmartTimeout", "is %v, must be > 0", c.SmartTimeout)
	case c.SmartInterval < 0:
		return bad("SmartInterval", "is %v, must be >= 0", c.SmartInterval)
	case c.Interval < 10*time.Millisecond:
		return bad("Interval", "is %v, must be at least 10ms (collectors read sysfs and run smartctl)", c.Interval)
	case c.OnceSpan < 0:
		return bad("OnceSpan", "is %v, must be >= 0", c.OnceSpan)
	}
	if err := c.Thresholds.Validate(); err != nil {
		return err
	}
	return c.FailSlow.Validate()
}
