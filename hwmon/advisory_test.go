package hwmon

import (
	"strings"
	"testing"
	"time"
)

func TestSMARTAdvisories(t *testing.T) {
	a, err := NewArbiter(DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	failing := false
	rep := a.Evaluate(Snapshot{At: c.now(), SMART: []SMARTDevice{
		{Device: "/dev/sda", ExitStatus: smartExitDiskFailing | smartExitPrefail, Passed: &failing, ATA: map[int]uint64{5: 0, 198: 3}},
		{Device: "/dev/nvme0", NVMe: &NVMeHealth{CriticalWarning: nvmeWarnReadOnly, MediaErrors: 1, PercentageUsed: 100}},
		{Device: "/dev/nvme1", NVMe: &NVMeHealth{CriticalWarning: nvmeWarnTemperature}},
	}})
	if rep.Verdict != Healthy {
		t.Fatalf("SMART advice changed the verdict:\n%s", reasonsText(rep))
	}
	text := reasonsText(rep)
	for _, want := range []string{
		"[critical] smart health (/dev/sda): SMART overall health: FAILING -> plan disk replacement",
		"[warn] smart health (/dev/sda): a prefail attribute is at or below its threshold",
		"Offline_Uncorrectable = 3",
		"[critical] smart health (/dev/nvme0): NVMe critical_warning: media placed in read-only mode",
		"NVMe media_errors = 1",
		"percentage_used >= 100",
		"[warn] smart health (/dev/nvme1): NVMe critical_warning: temperature outside threshold",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}

func TestUDMACRCErrorsRisingAdviseCabling(t *testing.T) {
	a, _ := NewArbiter(DefaultThresholds())
	c := newClock()
	dev := func(crc uint64) Snapshot {
		return Snapshot{At: c.now(), SMART: []SMARTDevice{{Device: "/dev/sda", ATA: map[int]uint64{199: crc}}}}
	}
	a.Evaluate(dev(40)) // old errors: not rising
	c.advance(time.Minute)
	expectNoRow(t, a.Evaluate(dev(40)), RowSMARTHealth)
	c.advance(time.Minute)
	expect(t, a.Evaluate(dev(43)), Healthy, RowSMARTHealth, Warn, ActionCheckCabling)
}

func TestCPUThrottleRisingAdvisesInspection(t *testing.T) {
	a, _ := NewArbiter(DefaultThresholds())
	c := newClock()
	cpus := func(core uint64) Snapshot {
		return Snapshot{At: c.now(), CPUThrottle: []CPUThrottle{{CPU: 0, CoreCount: core}, {CPU: 1, CoreCount: 7}}}
	}
	a.Evaluate(cpus(7))
	c.advance(time.Minute)
	rep := a.Evaluate(cpus(9))
	expect(t, rep, Healthy, RowCPUThrottle, Warn, ActionInspect)
	if rep.Reasons[0].Subject != "cpu0" || rep.Reasons[0].Value != 2 {
		t.Fatalf("reason %s", rep.Reasons[0])
	}
	c.advance(2 * time.Hour)
	expectNoRow(t, a.Evaluate(cpus(9)), RowCPUThrottle)
}
