package hwmon

import (
	"context"
	"testing"
)

func TestDiskNamesByDevMapsPartitionsToDisk(t *testing.T) {
	f := newSysfs(t)
	f.write("block/nvme0n1/dev", "259:0")
	f.write("block/nvme0n1/nvme0n1p1/dev", "259:1")
	f.write("block/nvme0n1/queue/dev", "9:9") // not a partition
	f.write("block/sda/dev", "8:0")
	got := diskNamesByDev(f.root + "/block")
	want := map[string]string{"259:0": "nvme0n1", "259:1": "nvme0n1", "8:0": "sda"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestEBPFDisabledIsReported(t *testing.T) {
	var s Snapshot
	c := &EBPFLatencyCollector{Disabled: true}
	c.Collect(context.Background(), &s)
	if st, _ := signalOf(s, "ebpf-blklat"); st.Available || st.Reason != "disabled by Config.DisableEBPF" {
		t.Fatalf("status %+v", st)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestEBPFCollectorLive: where the kernel permits, the collector attaches
// and reports; where it refuses, it says why. Either way it never crashes.
func TestEBPFCollectorLive(t *testing.T) {
	c := &EBPFLatencyCollector{SysfsRoot: "/sys"}
	defer c.Close()
	var s Snapshot
	c.Collect(context.Background(), &s)
	st, ok := signalOf(s, "ebpf-blklat")
	if !ok || (!st.Available && st.Reason == "") {
		t.Fatalf("status %+v", st)
	}
	t.Log(st)
}
