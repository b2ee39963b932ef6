package hwmon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rig is a Monitor over a fixture sysfs tree, a fake smartctl and a manual
// clock: each test injects a fault by rewriting fixture files or feeding
// FailSlow/Verifier, then steps the Monitor.
type rig struct {
	t     *testing.T
	fs    *sysfsFixture
	clk   *clock
	mon   *Monitor
	smart string // path of the JSON the fake smartctl prints
}

func newRig(t *testing.T, mutate func(*Config)) *rig {
	t.Helper()
	fs := newSysfs(t)
	fs.edac("mc0", 0, 0)
	fs.dimm("mc0", "dimm0", "DIMM_A1", 0, 0)
	fs.diskStat("sda", 0, 0, 0, 0)
	fs.rdmaPort("mlx5_0", 1, "4: ACTIVE", map[string]string{"symbol_error": "0", "link_downed": "0", "link_error_recovery": "0"})
	bin := fakeSmartctl(t, strings.Replace(ataJSON, `"value": 12, "string": "12"`, `"value": 0, "string": "0"`, 1), 0)
	cfg := DefaultConfig()
	cfg.SysfsRoot = fs.root
	if mutate != nil {
		mutate(&cfg)
	}
	clk := newClock()
	mon, err := NewMonitor(cfg, WithClock(clk.now), WithCollectors(
		&EDACCollector{SysfsRoot: fs.root},
		&SMARTCollector{SmartctlPath: bin, Devices: []string{"/dev/sda"}, Timeout: 5 * time.Second, Interval: cfg.SmartInterval},
		&BlockStatCollector{SysfsRoot: fs.root},
		&RDMACollector{SysfsRoot: fs.root},
	))
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, fs: fs, clk: clk, mon: mon, smart: filepath.Join(filepath.Dir(bin), "out.json")}
}

func (r *rig) step(d time.Duration) Report {
	r.clk.advance(d)
	return r.mon.Step(context.Background())
}

func (r *rig) setSmartJSON(body string) {
	if err := os.WriteFile(r.smart, []byte(body), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func expect(t *testing.T, rep Report, verdict Verdict, row string, sev Severity, act Action) {
	t.Helper()
	if rep.Verdict != verdict || (row != "" && !hasReason(rep, row, sev, act)) {
		t.Fatalf("want %s with [%s] %s -> %s, got:\n%s", verdict, sev, row, act, reasonsText(rep))
	}
}

func expectNoRow(t *testing.T, rep Report, row string) {
	t.Helper()
	for _, rs := range rep.Reasons {
		if rs.Row == row {
			t.Fatalf("unexpected %s reason: %s", row, rs)
		}
	}
}

// memory CE rate: >10/day warn (plan DIMM replacement), >100/day critical (degrade).
func TestRowMemoryCERate(t *testing.T) {
	r := newRig(t, nil)
	expect(t, r.step(0), Healthy, "", 0, 0)
	r.fs.edac("mc0", 15, 0)
	r.fs.dimm("mc0", "dimm0", "DIMM_A1", 15, 0)
	rep := r.step(time.Hour)
	expect(t, rep, Healthy, RowMemoryCE, Warn, ActionPlanDIMMReplacement)
	if !strings.Contains(rep.Reasons[0].Subject, "DIMM_A1") {
		t.Fatalf("the DIMM to replace is not named: %s", rep.Reasons[0])
	}
	r.fs.edac("mc0", 150, 0)
	expect(t, r.step(time.Hour), Degraded, RowMemoryCE, Critical, ActionDegrade)
	// A day later the errors have left the window.
	rep = r.step(24*time.Hour + time.Minute)
	expect(t, rep, Healthy, "", 0, 0)
	expectNoRow(t, rep, RowMemoryCE)
}

// memory CE rate from rasdaemon's database (same row, second source).
func TestRowMemoryCERateFromRasdaemon(t *testing.T) {
	db := newRasDB(t, true)
	clk := newClock()
	for i := 0; i < 120; i++ {
		db.mc(clk.now().Add(-time.Duration(i)*time.Minute), "Corrected", 1, "DIMM_B2")
	}
	cfg := DefaultConfig()
	mon, err := NewMonitor(cfg, WithClock(clk.now), WithCollectors(&RasdaemonCollector{Path: db.path, Lookback: 24 * time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	rep := mon.Step(context.Background())
	expect(t, rep, Degraded, RowMemoryCE, Critical, ActionDegrade)
	if rep.Reasons[0].Subject != "DIMM_B2" {
		t.Fatalf("subject = %q", rep.Reasons[0].Subject)
	}
}

// memory UE: >0 fences at once; the fence latches.
func TestRowMemoryUE(t *testing.T) {
	r := newRig(t, nil)
	expect(t, r.step(0), Healthy, "", 0, 0)
	r.fs.edac("mc0", 0, 1)
	r.fs.dimm("mc0", "dimm0", "DIMM_A1", 0, 1)
	rep := r.step(time.Second)
	expect(t, rep, Failed, RowMemoryUE, Critical, ActionFence)
	if !strings.Contains(rep.Reasons[0].Subject, "DIMM_A1") {
		t.Fatalf("subject = %q", rep.Reasons[0].Subject)
	}
	// The counters are reset (driver reload): the fence stays latched.
	r.fs.edac("mc0", 0, 0)
	r.fs.dimm("mc0", "dimm0", "DIMM_A1", 0, 0)
	rep = r.step(time.Second)
	expect(t, rep, Failed, RowMemoryUE, Critical, ActionFence)
	expect(t, rep, Failed, RowCounterReset, Info, ActionNone)
	r.mon.ClearLatched()
	expect(t, r.step(time.Second), Healthy, "", 0, 0)
}

// memory UE seen only by rasdaemon (mc_event Uncorrected) also fences.
func TestRowMemoryUEFromRasdaemon(t *testing.T) {
	db := newRasDB(t, true)
	clk := newClock()
	db.mc(clk.now().Add(-time.Minute), "Uncorrected", 1, "DIMM_B2")
	mon, err := NewMonitor(DefaultConfig(), WithClock(clk.now), WithCollectors(&RasdaemonCollector{Path: db.path, Lookback: 24 * time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	expect(t, mon.Step(context.Background()), Failed, RowMemoryUE, Critical, ActionFence)
}

// disk p99: >5x baseline warn, >10x critical (degrade), sustained critical fences.
func TestRowDiskP99(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.Thresholds.DiskBaselineSamples = 10
		c.Thresholds.DiskWindow = 10 * time.Second
		c.Thresholds.DiskSustainedFor = 30 * time.Second
	})
	var ios, ticks uint64
	io := func(latencyMs uint64) Report {
		ios += 100
		ticks += 100 * latencyMs
		r.fs.diskStat("sda", ios, ticks, 0, 0)
		return r.step(time.Second)
	}
	r.step(0)
	for i := 0; i < 10; i++ {
		expect(t, io(2), Healthy, "", 0, 0)
	}
	rep := io(12) // 6x
	expect(t, rep, Healthy, RowDiskP99, Warn, ActionInspect)
	if d := rep.Disks[0]; d.Baseline != 2*time.Millisecond || d.P99 != 12*time.Millisecond || d.Source != "sysfs" {
		t.Fatalf("disk view = %+v", d)
	}
	expect(t, io(25), Degraded, RowDiskP99, Critical, ActionDegrade) // 12.5x
	var fenced bool
	for i := 0; i < 31; i++ {
		if rep = io(25); rep.Verdict == Failed {
			fenced = true
			break
		}
		expect(t, rep, Degraded, RowDiskP99, Critical, ActionDegrade)
	}
	if !fenced {
		t.Fatalf("sustained critical did not fence:\n%s", reasonsText(rep))
	}
	expect(t, rep, Failed, RowDiskP99, Critical, ActionFence)
	// Recovery: once the slow intervals leave the window the disk is healthy.
	for i := 0; i < 11; i++ {
		rep = io(2)
	}
	expect(t, rep, Healthy, "", 0, 0)
	expectNoRow(t, rep, RowDiskP99)
}

// disk p99 from the eBPF histogram (true per-I/O p99).
func TestRowDiskP99FromEBPFHistogram(t *testing.T) {
	th := DefaultThresholds()
	th.DiskBaselineSamples = 3
	a, err := NewArbiter(th)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	hist := make([]uint64, 32)
	var ios uint64
	snap := func(bucket, n int) Report {
		hist[bucket] += uint64(n)
		ios += uint64(n)
		clk.advance(time.Second)
		return a.Evaluate(Snapshot{At: clk.now(),
			Disks:       []DiskStat{{Device: "nvme0n1", WriteIOs: ios, WriteTicks: ios}},
			DiskLatency: []DiskLatencyHistogram{{Device: "nvme0n1", Buckets: append([]uint64(nil), hist...)}}})
	}
	for i := 0; i < 4; i++ {
		snap(8, 1000) // 256-512 µs: baseline p99 512 µs (bucket upper edge)
	}
	snap(8, 1000)
	rep := snap(12, 100) // ~1% of window at 4-8 ms: 8.192 ms p99 = 16x
	expect(t, rep, Degraded, RowDiskP99, Critical, ActionDegrade)
	if d := rep.Disks[0]; d.Source != "ebpf" || d.Baseline != 512*time.Microsecond {
		t.Fatalf("disk view = %+v", d)
	}
}

// reallocated sectors: >10 warn, >100 critical; both plan disk replacement.
func TestRowReallocatedSectors(t *testing.T) {
	r := newRig(t, func(c *Config) { c.SmartInterval = 0 })
	rep := r.step(0)
	expect(t, rep, Healthy, "", 0, 0)
	expectNoRow(t, rep, RowReallocated)
	r.setSmartJSON(ataJSON) // attribute 5 raw = 12
	expect(t, r.step(time.Minute), Healthy, RowReallocated, Warn, ActionPlanDiskReplacement)
	r.setSmartJSON(strings.Replace(ataJSON, `"value": 12, "string": "12"`, `"value": 150, "string": "150"`, 1))
	expect(t, r.step(time.Minute), Healthy, RowReallocated, Critical, ActionPlanDiskReplacement)
}

// link symbol errors: rising warns (check cabling), >1000/h critical degrades.
func TestRowLinkSymbolErrors(t *testing.T) {
	r := newRig(t, nil)
	expect(t, r.step(0), Healthy, "", 0, 0)
	r.fs.write("class/infiniband/mlx5_0/ports/1/counters/symbol_error", "5")
	rep := r.step(time.Minute)
	expect(t, rep, Healthy, RowLinkSymbol, Warn, ActionCheckCabling)
	if rep.Reasons[0].Subject != "mlx5_0/1" {
		t.Fatalf("subject = %q", rep.Reasons[0].Subject)
	}
	r.fs.write("class/infiniband/mlx5_0/ports/1/counters/symbol_error", "1010")
	expect(t, r.step(time.Minute), Degraded, RowLinkSymbol, Critical, ActionDegrade)
	// An hour without new errors: back to healthy.
	rep = r.step(time.Hour)
	expect(t, rep, Healthy, "", 0, 0)
	expectNoRow(t, rep, RowLinkSymbol)
	// A saturated 16-bit counter cannot rise: say so instead of looking clean.
	r.fs.write("class/infiniband/mlx5_0/ports/1/counters/symbol_error", "65535")
	r.step(time.Minute)
	rep = r.step(time.Hour)
	expect(t, rep, Healthy, RowLinkSymbol, Warn, ActionCheckCabling)
	if !strings.Contains(reasonsText(rep), "saturated") {
		t.Fatalf("saturation not reported:\n%s", reasonsText(rep))
	}
}

// probe latency: >10 ms warn, >50 ms critical: inspect disk/network.
func TestRowProbeLatency(t *testing.T) {
	r := newRig(t, nil)
	fs := r.mon.FailSlow()
	feed := func(latency time.Duration) {
		for i := 0; i < 300; i++ {
			r.clk.advance(10 * time.Millisecond)
			fs.Observe(1+i%2, int64(latency), r.clk.now())
		}
	}
	feed(200 * time.Microsecond)
	feed(200 * time.Microsecond) // 300 per follower: past BaselineSamples
	rep := r.step(0)
	expect(t, rep, Healthy, "", 0, 0)
	expectNoRow(t, rep, RowProbeLatency)
	feed(12 * time.Millisecond)
	expect(t, r.step(0), Healthy, RowProbeLatency, Warn, ActionInspect)
	feed(60 * time.Millisecond)
	rep = r.step(0)
	expect(t, rep, Healthy, RowProbeLatency, Critical, ActionInspect)
	expect(t, rep, Healthy, RowFailSlowPeer, Critical, ActionInspect)
}

// log checksum failure: >0 fences at once and reports.
func TestRowLogChecksumFailure(t *testing.T) {
	r := newRig(t, nil)
	v := r.mon.Verifier()
	for i := 0; i < 100; i++ {
		v.RecordRead(true)
		v.RecordWrite(true)
	}
	expect(t, r.step(0), Healthy, "", 0, 0)
	v.RecordWrite(false)
	rep := r.step(time.Second)
	expect(t, rep, Failed, RowLogChecksum, Critical, ActionFence)
	if !strings.Contains(rep.Reasons[0].Detail, "verification checksum FAILED") || !strings.Contains(rep.Reasons[0].Detail, "1 write (in-flight corruption)") {
		t.Fatalf("report does not say what failed: %s", rep.Reasons[0])
	}
	if c := v.Counts(); c.WritesTotal != 101 || c.WriteFailures != 1 || c.ReadFailures != 0 {
		t.Fatalf("counts = %+v", c)
	}
}

func TestCounterGoingBackwardsIsCounterReset(t *testing.T) {
	r := newRig(t, nil)
	r.fs.edac("mc0", 50, 0)
	r.step(0)
	r.fs.edac("mc0", 3, 0)
	rep := r.step(time.Minute)
	expect(t, rep, Healthy, RowCounterReset, Info, ActionNone)
	st, _ := signal(rep, "edac")
	if !strings.Contains(st.Note, "counter reset: edac/mc0/ce went from 50 to 3") {
		t.Fatalf("edac note = %q", st.Note)
	}
	for _, rs := range rep.Reasons {
		if rs.Value < 0 {
			t.Fatalf("negative value: %s", rs)
		}
	}
	// Block stat going backwards: interval skipped, reported, no negative latency.
	r.fs.diskStat("sda", 1000, 1000, 0, 0)
	r.step(time.Second)
	r.fs.diskStat("sda", 10, 10, 0, 0)
	rep = r.step(time.Second)
	expect(t, rep, Healthy, RowCounterReset, Info, ActionNone)
	if d := rep.Disks[0]; d.ReadLatency != 0 {
		t.Fatalf("latency from a reset interval: %+v", d)
	}
	st, _ = signal(rep, "blockstat")
	if !strings.Contains(st.Note, "counter reset") {
		t.Fatalf("blockstat note = %q", st.Note)
	}
}

func TestHysteresisHoldsLevelUntilClearRatio(t *testing.T) {
	cases := []struct {
		prev  Severity
		value float64
		want  Severity
	}{
		{Info, 10, Info}, {Info, 11, Warn}, {Info, 101, Critical},
		{Critical, 90, Critical}, {Critical, 80, Warn}, {Warn, 9, Warn}, {Warn, 8, Info},
		{Critical, 7, Info},
	}
	for _, c := range cases {
		if got := levelFor(c.prev, c.value, 10, 100, true, 0.8); got != c.want {
			t.Errorf("levelFor(%s, %v) = %s, want %s", c.prev, c.value, got, c.want)
		}
	}
	if got := levelFor(Info, 1, 0, 0, false, 0.8); got != Critical {
		t.Errorf("critical-only row at 1 > 0: %s", got)
	}
}

func TestCounterWindowSlides(t *testing.T) {
	c := newCounterWindow(time.Hour)
	t0 := newClock().now()
	if u := c.update(100, t0); !u.first || c.sum(t0) != 0 {
		t.Fatal("first sample counts nothing")
	}
	c.update(110, t0.Add(10*time.Minute))
	c.update(130, t0.Add(50*time.Minute))
	if got := c.sum(t0.Add(55 * time.Minute)); got != 30 {
		t.Fatalf("sum = %d, want 30", got)
	}
	if got := c.sum(t0.Add(71 * time.Minute)); got != 20 {
		t.Fatalf("after the first increment aged out: %d, want 20", got)
	}
	if u := c.update(5, t0.Add(80*time.Minute)); !u.reset || u.prev != 130 {
		t.Fatalf("reset not seen: %+v", u)
	}
	if got := c.sum(t0.Add(80 * time.Minute)); got != 25 {
		t.Fatalf("after reset: %d, want 25 (20 + 5 fresh)", got)
	}
}

func TestConfigValidationNamesTheField(t *testing.T) {
	for field, mutate := range map[string]func(*Config){
		"Thresholds.MemoryCECriticalPerDay": func(c *Config) { c.Thresholds.MemoryCECriticalPerDay = 5 },
		"Thresholds.DiskP99WarnRatio":       func(c *Config) { c.Thresholds.DiskP99WarnRatio = 1 },
		"Thresholds.HysteresisClearRatio":   func(c *Config) { c.Thresholds.HysteresisClearRatio = 0 },
		"Config.Interval":                   func(c *Config) { c.Interval = 0 },
		"Config.SysfsRoot":                  func(c *Config) { c.SysfsRoot = "" },
		"FailSlow.CriticalRatio":            func(c *Config) { c.FailSlow.CriticalRatio = 2 },
	} {
		c := DefaultConfig()
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), field) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v", field, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// A signal that becomes unreadable must not turn a degraded row healthy.
func TestUnavailableSignalHoldsLastState(t *testing.T) {
	r := newRig(t, nil)
	r.step(0)
	r.fs.edac("mc0", 500, 0)
	expect(t, r.step(time.Hour), Degraded, RowMemoryCE, Critical, ActionDegrade)
	if err := os.RemoveAll(filepath.Join(r.fs.root, "devices/system/edac")); err != nil {
		t.Fatal(err)
	}
	rep := r.step(time.Minute)
	expect(t, rep, Degraded, RowMemoryCE, Critical, ActionDegrade)
	if st, _ := signal(rep, "edac"); st.Available || !strings.Contains(reasonsText(rep), "held: signal unavailable") {
		t.Fatalf("edac %+v\n%s", st, reasonsText(rep))
	}
	// The signal returns; a day later the errors have aged out.
	r.fs.edac("mc0", 500, 0)
	r.fs.dimm("mc0", "dimm0", "DIMM_A1", 0, 0)
	expect(t, r.step(time.Minute), Degraded, RowMemoryCE, Critical, ActionDegrade)
	expect(t, r.step(25*time.Hour), Healthy, "", 0, 0)

	// A disk that vanished while blockstat still reads is forgotten, not held.
	r2 := newRig(t, func(c *Config) { c.Thresholds.DiskBaselineSamples = 2 })
	var ios, ticks uint64
	for _, ms := range []uint64{0, 2, 2, 2, 40} {
		ios += 100
		ticks += 100 * ms
		r2.fs.diskStat("sda", ios, ticks, 0, 0)
		rep = r2.step(time.Second)
	}
	expect(t, rep, Degraded, RowDiskP99, Critical, ActionDegrade)
	if err := os.RemoveAll(filepath.Join(r2.fs.root, "block/sda")); err != nil {
		t.Fatal(err)
	}
	r2.fs.diskStat("sdb", 1, 1, 0, 0)
	rep = r2.step(time.Second)
	expectNoRow(t, rep, RowDiskP99)
}
