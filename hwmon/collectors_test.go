package hwmon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestEDACReadsControllersAndDIMMs(t *testing.T) {
	f := newSysfs(t)
	f.edac("mc0", 7, 0)
	f.dimm("mc0", "dimm0", "CPU_SrcID#0_Ha#0_Chan#0_DIMM#0", 5, 0)
	f.dimm("mc0", "dimm1", "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0", 2, 0)
	f.edac("mc1", 0, 1)
	mcs, err := ReadEDAC(filepath.Join(f.root, "devices/system/edac/mc"))
	if err != nil {
		t.Fatal(err)
	}
	if len(mcs) != 2 || mcs[0].Name != "mc0" || mcs[0].CECount != 7 || mcs[1].UECount != 1 {
		t.Fatalf("controllers = %+v", mcs)
	}
	if d := mcs[0].DIMMs; len(d) != 2 || d[0].CECount != 5 || d[1].Label != "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0" {
		t.Fatalf("dimms = %+v", d)
	}
}

func TestEDACMissingTreeIsUnavailable(t *testing.T) {
	f := newSysfs(t)
	var s Snapshot
	(&EDACCollector{SysfsRoot: f.root}).Collect(context.Background(), &s)
	st, ok := signalOf(s, "edac")
	if !ok || st.Available || !strings.Contains(st.Reason, "does not exist") {
		t.Fatalf("status = %+v", st)
	}
	if len(s.EDAC) != 0 {
		t.Fatal("a missing tree produced readings")
	}
}

func TestEDACGarbageCounterIsUnavailableNotZero(t *testing.T) {
	f := newSysfs(t)
	f.edac("mc0", 0, 0)
	f.write("devices/system/edac/mc/mc0/ue_count", "not-a-number")
	_, err := ReadEDAC(filepath.Join(f.root, "devices/system/edac/mc"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "ue_count") {
		t.Fatalf("err = %v", err)
	}
	f2 := newSysfs(t)
	f2.write("devices/system/edac/mc/power/x", "")
	if _, err := ReadEDAC(filepath.Join(f2.root, "devices/system/edac/mc")); !errors.Is(err, ErrUnavailable) ||
		!strings.Contains(err.Error(), "no memory controllers") {
		t.Fatalf("tree without controllers: err = %v", err)
	}
}

func signalOf(s Snapshot, name string) (SignalStatus, bool) {
	for _, st := range s.Signals {
		if st.Name == name {
			return st, true
		}
	}
	return SignalStatus{}, false
}

func TestBlockStatParsesAndSkipsVirtual(t *testing.T) {
	f := newSysfs(t)
	f.diskStat("nvme0n1", 100, 50, 200, 400)
	f.diskStat("loop0", 1, 1, 1, 1)
	f.write("block/sdb/stat", "1 2 3")
	stats, errs, err := ReadBlockStats(filepath.Join(f.root, "block"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0] != (DiskStat{Device: "nvme0n1", ReadIOs: 100, ReadTicksMs: 50, WriteIOs: 200, WriteTicks: 400, IOTicksMs: 450}) {
		t.Fatalf("stats = %+v", stats)
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "sdb") {
		t.Fatalf("errs = %v", errs)
	}
	var s Snapshot
	(&BlockStatCollector{SysfsRoot: filepath.Join(f.root, "nope")}).Collect(context.Background(), &s)
	if st, _ := signalOf(s, "blockstat"); st.Available || st.Reason == "" {
		t.Fatalf("missing /sys/block: %+v", st)
	}
}

func TestThrottleCounts(t *testing.T) {
	f := newSysfs(t)
	f.write("devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", "3")
	f.write("devices/system/cpu/cpu0/thermal_throttle/package_throttle_count", "4")
	f.write("devices/system/cpu/cpu1/thermal_throttle/core_throttle_count", "0")
	f.write("devices/system/cpu/cpufreq/x", "")
	got, err := ReadThrottle(filepath.Join(f.root, "devices/system/cpu"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].CoreCount != 3 || got[0].PackageCount != 4 || !got[0].HasPackageInfo || got[1].HasPackageInfo {
		t.Fatalf("got %+v", got)
	}
	f2 := newSysfs(t)
	f2.write("devices/system/cpu/cpu0/online", "1")
	if _, err := ReadThrottle(filepath.Join(f2.root, "devices/system/cpu")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no thermal_throttle: err = %v", err)
	}
}

func TestRDMAPortCountersAndUnreadableCounter(t *testing.T) {
	f := newSysfs(t)
	f.rdmaPort("mlx5_0", 1, "4: ACTIVE", map[string]string{
		"symbol_error": "12", "port_xmit_data": "1000", "link_downed": "0", "port_rcv_errors": "N/A",
	})
	f.write("class/infiniband/mlx5_0/ports/1/hw_counters/out_of_sequence", "3")
	f.write("class/infiniband/mlx5_0/ports/1/gid_attrs/ndevs/0", "ens1f0")
	ports, err := ReadRDMAPorts(f.root)
	if err != nil {
		t.Fatal(err)
	}
	p := ports[0]
	if p.Device != "mlx5_0" || p.Port != 1 || p.State != "4: ACTIVE" || p.Netdev != "ens1f0" {
		t.Fatalf("port = %+v", p)
	}
	if p.Counters["symbol_error"] != 12 || p.Counters["port_xmit_data"] != 1000 || p.HWCounters["out_of_sequence"] != 3 {
		t.Fatalf("counters = %v hw = %v", p.Counters, p.HWCounters)
	}
	if _, zero := p.Counters["port_rcv_errors"]; zero || p.ReadErrors["port_rcv_errors"] == "" {
		t.Fatalf("unreadable counter must be absent and listed: counters %v errors %v", p.Counters, p.ReadErrors)
	}
	if _, err := ReadRDMAPorts(t.TempDir()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no infiniband class: err = %v", err)
	}
}

const ataJSON = `{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 3], "exit_status": 0},
  "device": {"name": "/dev/sda", "type": "sat", "protocol": "ATA"},
  "model_name": "ExampleDisk 1TB", "serial_number": "S1",
  "smart_status": {"passed": true},
  "ata_smart_attributes": {"revision": 16, "table": [
    {"id": 5, "name": "Reallocated_Sector_Ct", "value": 100, "worst": 100, "thresh": 10, "raw": {"value": 12, "string": "12"}},
    {"id": 9, "name": "Power_On_Hours", "raw": {"value": 9000, "string": "9000"}},
    {"id": 187, "name": "Reported_Uncorrect", "raw": {"value": 0, "string": "0"}},
    {"id": 197, "name": "Current_Pending_Sector", "raw": {"value": 1, "string": "1"}},
    {"id": 198, "name": "Offline_Uncorrectable", "raw": {"value": 0, "string": "0"}},
    {"id": 199, "name": "UDMA_CRC_Error_Count", "raw": {"value": 4, "string": "4"}}
  ]},
  "temperature": {"current": 38}
}`

const nvmeJSON = `{
  "smartctl": {"exit_status": 4},
  "device": {"name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
  "model_name": "ExampleNVMe",
  "smart_status": {"passed": true},
  "nvme_smart_health_information_log": {"critical_warning": 5, "temperature": 41, "available_spare": 3,
    "percentage_used": 101, "media_errors": 2, "num_err_log_entries": 9}
}`

func TestParseSmartctlATAAndNVMe(t *testing.T) {
	d, err := ParseSmartctlJSON("/dev/sda", []byte(ataJSON), 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Protocol != "ATA" || d.ATA[5] != 12 || d.ATA[197] != 1 || d.ATA[199] != 4 || len(d.ATA) != 5 ||
		d.Passed == nil || !*d.Passed || d.TemperatureC == nil || *d.TemperatureC != 38 {
		t.Fatalf("ata = %+v", d)
	}
	n, err := ParseSmartctlJSON("/dev/nvme0", []byte(nvmeJSON), 0)
	if err != nil {
		t.Fatal(err)
	}
	if n.NVMe == nil || n.NVMe.CriticalWarning != 5 || n.NVMe.MediaErrors != 2 || n.NVMe.PercentageUsed != 101 || *n.TemperatureC != 41 {
		t.Fatalf("nvme = %+v %+v", n, n.NVMe)
	}
	if n.ExitStatus != 4 || len(n.ExitBits) != 1 || !strings.HasPrefix(n.ExitBits[0], "bit2") {
		t.Fatalf("exit status taken from JSON: %d %v", n.ExitStatus, n.ExitBits)
	}
	if got := decodeNVMeCriticalWarning(5); len(got) != 2 || got[0] != "available spare below threshold" || got[1] != "NVM subsystem reliability degraded" {
		t.Fatalf("critical_warning bits = %v", got)
	}
}

func TestDecodeSmartctlExit(t *testing.T) {
	got := DecodeSmartctlExit(0b1010_0010)
	if len(got) != 3 || !strings.HasPrefix(got[0], "bit1") || !strings.HasPrefix(got[1], "bit5") || !strings.HasPrefix(got[2], "bit7") {
		t.Fatalf("bits = %v", got)
	}
	if DecodeSmartctlExit(0) != nil {
		t.Fatal("status 0 has no bits")
	}
}

func TestSmartctlBadOutputIsUnavailable(t *testing.T) {
	_, err := ParseSmartctlJSON("/dev/sda", []byte("smartctl 7.3\nPlease specify device type with the -d option.\n"), 1)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "non-JSON") {
		t.Fatalf("non-JSON: err = %v", err)
	}
	_, err = ParseSmartctlJSON("/dev/sdz", []byte(`{"smartctl":{"exit_status":2,"messages":[{"string":"Smartctl open device: /dev/sdz failed: No such device","severity":"error"}]}}`), 2)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "No such device") || !strings.Contains(err.Error(), "bit1") {
		t.Fatalf("open failed: err = %v", err)
	}
}

// fakeSmartctl writes a shell script that prints body and exits with code.
func fakeSmartctl(t *testing.T, body string, code int) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out.json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "smartctl")
	script := "#!/bin/sh\ncat " + filepath.Join(dir, "out.json") + "\nexit " + strconv.Itoa(code) + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSMARTCollectorRunsSmartctl(t *testing.T) {
	bin := fakeSmartctl(t, ataJSON, 0)
	c := &SMARTCollector{SmartctlPath: bin, Devices: []string{"/dev/sda"}, Timeout: 5e9}
	var s Snapshot
	c.Collect(context.Background(), &s)
	if len(s.SMART) != 1 || s.SMART[0].ATA[5] != 12 {
		t.Fatalf("smart = %+v signals %+v", s.SMART, s.Signals)
	}
	if st, _ := signalOf(s, "smart /dev/sda"); !st.Available {
		t.Fatalf("signal = %+v", st)
	}

	bad := fakeSmartctl(t, "this is not json", 4)
	var s2 Snapshot
	(&SMARTCollector{SmartctlPath: bad, Devices: []string{"/dev/sda"}, Timeout: 5e9}).Collect(context.Background(), &s2)
	if st, _ := signalOf(s2, "smart /dev/sda"); st.Available || !strings.Contains(st.Reason, "non-JSON") || !strings.Contains(st.Reason, "exit status 4") {
		t.Fatalf("non-JSON signal = %+v", st)
	}

	var s3 Snapshot
	(&SMARTCollector{SmartctlPath: filepath.Join(t.TempDir(), "smartctl"), Timeout: 5e9}).Collect(context.Background(), &s3)
	if st, _ := signalOf(s3, "smart"); st.Available || !strings.Contains(st.Reason, "smartctl not found") {
		t.Fatalf("absent smartctl signal = %+v", st)
	}
}

func TestSMARTDiscoverySkipsVirtualDevices(t *testing.T) {
	f := newSysfs(t)
	for _, d := range []string{"sda", "nvme0n1", "loop0", "zram0", "dm-0", "sr0"} {
		f.write("block/"+d+"/dev", "1:1")
	}
	got, err := discoverSmartDevices(f.root)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "/dev/nvme0n1,/dev/sda" {
		t.Fatalf("devices = %v", got)
	}
}
