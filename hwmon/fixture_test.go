package hwmon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// sysfsFixture is a fake sysfs tree under t.TempDir().
type sysfsFixture struct {
	t    *testing.T
	root string
}

func newSysfs(t *testing.T) *sysfsFixture {
	t.Helper()
	return &sysfsFixture{t: t, root: t.TempDir()}
}

func (f *sysfsFixture) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *sysfsFixture) edac(mc string, ce, ue uint64) {
	f.write("devices/system/edac/mc/"+mc+"/ce_count", fmt.Sprint(ce))
	f.write("devices/system/edac/mc/"+mc+"/ue_count", fmt.Sprint(ue))
	f.write("devices/system/edac/mc/"+mc+"/ce_noinfo_count", "0")
	f.write("devices/system/edac/mc/"+mc+"/ue_noinfo_count", "0")
}

func (f *sysfsFixture) dimm(mc, dimm, label string, ce, ue uint64) {
	d := "devices/system/edac/mc/" + mc + "/" + dimm + "/"
	f.write(d+"dimm_ce_count", fmt.Sprint(ce))
	f.write(d+"dimm_ue_count", fmt.Sprint(ue))
	f.write(d+"dimm_label", label)
}

// diskStat writes /sys/block/<dev>/stat with the given cumulative counters.
func (f *sysfsFixture) diskStat(dev string, readIOs, readTicksMs, writeIOs, writeTicksMs uint64) {
	f.write("block/"+dev+"/stat", fmt.Sprintf("%8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d",
		readIOs, 0, readIOs*8, readTicksMs, writeIOs, 0, writeIOs*8, writeTicksMs, 0, readTicksMs+writeTicksMs, readTicksMs+writeTicksMs, 0, 0, 0, 0, 0, 0))
	f.write("block/"+dev+"/dev", "8:0")
}

func (f *sysfsFixture) rdmaPort(dev string, port int, state string, counters map[string]string) {
	p := fmt.Sprintf("class/infiniband/%s/ports/%d/", dev, port)
	f.write(p+"state", state)
	f.write(p+"phys_state", "5: LinkUp")
	f.write(p+"link_layer", "InfiniBand")
	for k, v := range counters {
		f.write(p+"counters/"+k, v)
	}
}

// clock is a manual clock for Monitor and Arbiter tests.
type clock struct{ t time.Time }

func newClock() *clock                   { return &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }
func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func hasReason(r Report, row string, sev Severity, act Action) bool {
	for _, rs := range r.Reasons {
		if rs.Row == row && rs.Severity == sev && rs.Action == act {
			return true
		}
	}
	return false
}

func signal(r Report, name string) (SignalStatus, bool) {
	for _, s := range r.Signals {
		if s.Name == name {
			return s, true
		}
	}
	return SignalStatus{}, false
}

func reasonsText(r Report) string {
	s := fmt.Sprintf("verdict %s\n", r.Verdict)
	for _, rs := range r.Reasons {
		s += "  " + rs.String() + "\n"
	}
	return s
}
