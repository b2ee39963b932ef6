package hwmon

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMonitorChangesOnVerdictChangeOnly(t *testing.T) {
	r := newRig(t, nil)
	r.step(0)
	if got := <-r.mon.Changes(); got.Verdict != Healthy {
		t.Fatalf("first report: %s", got.Verdict)
	}
	r.step(time.Second)
	select {
	case got := <-r.mon.Changes():
		t.Fatalf("no change, yet got %s", got.Verdict)
	default:
	}
	r.fs.edac("mc0", 0, 2)
	r.step(time.Second)
	if got := <-r.mon.Changes(); got.Verdict != Failed {
		t.Fatalf("after UE: %s", got.Verdict)
	}
	if latest, ok := r.mon.Latest(); !ok || latest.Verdict != Failed {
		t.Fatalf("Latest = %v %v", latest.Verdict, ok)
	}
}

func TestMonitorRunStopsOnCancel(t *testing.T) {
	fs := newSysfs(t)
	fs.edac("mc0", 0, 0)
	cfg := DefaultConfig()
	cfg.Interval = 10 * time.Millisecond
	mon, err := NewMonitor(cfg, WithCollectors(&EDACCollector{SysfsRoot: fs.root}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx) }()
	select {
	case r := <-mon.Changes():
		if r.Verdict != Healthy {
			t.Fatalf("verdict %s", r.Verdict)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no report from Run")
	}
	fs.edac("mc0", 0, 1)
	mon.Kick()
	select {
	case r := <-mon.Changes():
		if r.Verdict != Failed {
			t.Fatalf("verdict %s", r.Verdict)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("UE not noticed by Run")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func metricValue(mf *dto.MetricFamily, labels map[string]string) (float64, bool) {
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsExposeReportAndCounters(t *testing.T) {
	r := newRig(t, nil)
	reg := prometheus.NewRegistry()
	if err := r.mon.Register(reg); err != nil {
		t.Fatal(err)
	}
	if mfs := gather(t, reg); len(mfs) != 0 {
		t.Fatalf("metrics before the first collection: %v", mfs)
	}
	r.fs.edac("mc0", 3, 0)
	r.fs.dimm("mc0", "dimm0", "DIMM_A1", 3, 0)
	r.fs.write("class/infiniband/mlx5_0/ports/1/counters/port_xmit_data", "250")
	r.fs.write("class/infiniband/mlx5_0/ports/1/counters/symbol_error", "7")
	r.fs.diskStat("sda", 10, 20, 0, 0)
	r.step(0)
	r.fs.diskStat("sda", 20, 50, 0, 0) // 10 reads, 30 ms: 3 ms each
	r.mon.Verifier().RecordRead(false)
	r.step(time.Second)

	mfs := gather(t, reg)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mu_health_verdict", nil, float64(Failed)},
		{"mu_health_signal_available", map[string]string{"signal": "edac"}, 1},
		{"mu_memory_corrected_errors_total", map[string]string{"controller": "mc0", "dimm": "dimm0", "label": "DIMM_A1"}, 3},
		{"mu_rdma_port_transmit_bytes_total", map[string]string{"device": "mlx5_0", "port": "1"}, 1000},
		{"mu_rdma_port_symbol_errors_total", map[string]string{"device": "mlx5_0"}, 7},
		{"mu_rdma_port_active", map[string]string{"device": "mlx5_0"}, 1},
		{"mu_disk_read_latency_seconds", map[string]string{"device": "sda"}, 0.003},
		{"mu_smart_attribute_raw", map[string]string{"device": "/dev/sda", "id": "197"}, 1},
		{"mu_logstore_verifier_read_checksum_failures_total", nil, 1},
		{"mu_logstore_verifier_checksum_reads_total", nil, 1},
		{"mu_health_reasons", map[string]string{"row": RowLogChecksum, "severity": "critical"}, 1},
	} {
		got, ok := metricValue(mfs[c.name], c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}

func TestMetricsHistogramFromEBPFBuckets(t *testing.T) {
	m := &metrics{src: func() *published {
		return &published{snapshot: Snapshot{DiskLatency: []DiskLatencyHistogram{{Device: "vda", Buckets: []uint64{0, 2, 3}, SumNs: 25_000}}}}
	}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mf := gather(t, reg)["mu_disk_io_latency_seconds"]
	if mf == nil {
		t.Fatal("histogram missing")
	}
	h := mf.GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 5 || len(h.GetBucket()) != 3 || h.GetBucket()[1].GetCumulativeCount() != 2 || h.GetBucket()[1].GetUpperBound() != 4e-6 || h.GetSampleSum() != 25e-6 {
		t.Fatalf("histogram = %v", h)
	}
}

func TestWriteTextListsUnavailableSignals(t *testing.T) {
	rep := Report{
		Verdict: Degraded,
		Reasons: []Reason{{Row: RowDiskP99, Severity: Critical, Action: ActionDegrade, Subject: "sda", Value: 12, Threshold: 10, Unit: "x baseline"}},
		Signals: []SignalStatus{
			{Name: "edac", Reason: "/sys/devices/system/edac/mc does not exist"},
			{Name: "blockstat", Available: true, Note: "1 devices (sda)"},
		},
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"verdict: Degraded (serving, not preferred as leader)",
		"[critical] disk p99 (sda): 12 x baseline > 10 -> degrade",
		"signals (1 available, 1 unavailable)",
		"blockstat  ok: 1 devices (sda)",
		"edac       signal unavailable: /sys/devices/system/edac/mc does not exist",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// CollectOnce on an empty fixture root: every signal is listed as
// unavailable with its reason, and the verdict is not a crash.
func TestCollectOnceOnEmptyMachine(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SysfsRoot = t.TempDir()
	cfg.RasdaemonDB = cfg.SysfsRoot + "/ras.db"
	cfg.SmartctlPath = cfg.SysfsRoot + "/smartctl"
	cfg.DisableEBPF, cfg.DisableNetlink = true, true
	cfg.OnceSpan = 0
	rep, err := CollectOnce(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != Healthy || len(rep.Reasons) != 0 {
		t.Fatalf("report = %s", reasonsText(rep))
	}
	for _, name := range []string{"edac", "rasdaemon", "smart", "blockstat", "ebpf-blklat", "rdma", "netdev", "cpu-throttle"} {
		st, ok := signal(rep, name)
		if !ok || st.Available || st.Reason == "" {
			t.Errorf("%s: %+v (present %v)", name, st, ok)
		}
	}
	if _, err := CollectOnce(context.Background(), Config{}); err == nil {
		t.Fatal("zero Config accepted")
	}
}

// CollectOnce against this machine's real /sys: whatever is there, every
// collector must answer with a signal status and the text must render.
func TestCollectOnceOnThisMachine(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OnceSpan = 100 * time.Millisecond
	rep, err := CollectOnce(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
	for _, name := range []string{"edac", "rasdaemon", "blockstat", "ebpf-blklat", "rdma", "netdev", "cpu-throttle"} {
		if _, ok := signal(rep, name); !ok {
			t.Errorf("no status for %s", name)
		}
	}
	for _, s := range rep.Signals {
		if !s.Available && s.Reason == "" {
			t.Errorf("%s unavailable without a reason", s.Name)
		}
	}
}

func TestNetdevFromLink(t *testing.T) {
	carrier, changes := uint8(1), uint32(6)
	n, err := NetdevFromLink(rtnetlink.LinkMessage{Index: 3, Attributes: &rtnetlink.LinkAttributes{
		Name: "ens1f0", OperationalState: rtnetlink.OperStateUp, Carrier: &carrier, CarrierChanges: &changes,
		Stats64: &rtnetlink.LinkStats64{RXErrors: 9, RXCRCErrors: 4, RXFrameErrors: 1, TXErrors: 2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := NetdevStats{Name: "ens1f0", Index: 3, OperState: "up", Carrier: true, CarrierChanges: 6, RxErrors: 9, TxErrors: 2, RxCRCErrors: 4, RxFrameErrors: 1}
	if n != want {
		t.Fatalf("got %+v", n)
	}
	if _, err := NetdevFromLink(rtnetlink.LinkMessage{Attributes: &rtnetlink.LinkAttributes{Name: "x"}}); err == nil {
		t.Fatal("a link without stats must not read as zero errors")
	}
}

func TestRowLinkFlapsFromCarrierChanges(t *testing.T) {
	a, err := NewArbiter(DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	a.Evaluate(Snapshot{At: c.now(), Netdevs: []NetdevStats{{Name: "ens1f0", CarrierChanges: 2}}})
	c.advance(time.Second)
	rep := a.Evaluate(Snapshot{At: c.now(), Netdevs: []NetdevStats{{Name: "ens1f0", CarrierChanges: 4, RxCRCErrors: 2000}}})
	expect(t, rep, Degraded, RowLinkFlap, Warn, ActionCheckCabling)
	expect(t, rep, Degraded, RowLinkSymbol, Critical, ActionDegrade)
}

func TestNetdevCollectorLive(t *testing.T) {
	c := &NetdevCollector{}
	if err := c.Subscribe(); err != nil {
		t.Logf("subscription: %v", err)
	}
	var s Snapshot
	c.Collect(context.Background(), &s)
	st, ok := signalOf(s, "netdev")
	if !ok || (!st.Available && st.Reason == "") {
		t.Fatalf("status %+v", st)
	}
	t.Logf("%s", st)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
