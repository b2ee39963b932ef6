package blklat

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestTracerSeesIO loads the programs, forces disk I/O with fsync and
// expects completions in the histogram. It skips only when the kernel
// refuses (no privileges, no BTF) and MU_REQUIRE_EBPF is not set.
func TestTracerSeesIO(t *testing.T) {
	tr, err := Open()
	if errors.Is(err, ErrUnavailable) && os.Getenv("MU_REQUIRE_EBPF") == "" {
		t.Skipf("eBPF not permitted here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	dir := t.TempDir()
	var total uint64
	for i := 0; i < 20 && total == 0; i++ {
		f, err := os.Create(filepath.Join(dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		h, err := tr.Read()
		if err != nil {
			t.Fatal(err)
		}
		total = 0
		for dev, hist := range h {
			var n uint64
			for _, c := range hist.Buckets {
				n += c
			}
			total += n
			t.Logf("dev %d:%d buckets %v sum %d ns", dev.Major(), dev.Minor(), hist.Buckets, hist.SumNs)
			// The sum must lie between the buckets' lower and upper edges.
			var lowNs, highNs uint64
			for i, c := range hist.Buckets {
				if i > 0 {
					lowNs += c * (uint64(1) << i) * 1000
				}
				highNs += c * (uint64(1) << (i + 1)) * 1000
			}
			if n > 0 && (hist.SumNs < lowNs || hist.SumNs > highNs) {
				t.Fatalf("dev %d:%d: latency sum %d ns outside the buckets' [%d, %d]", dev.Major(), dev.Minor(), hist.SumNs, lowNs, highNs)
			}
		}
	}
	if total == 0 {
		t.Skip("no block I/O reached a request-based device (temp dir on tmpfs or a bio-based device)")
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestKernelOffsetsFromBTF(t *testing.T) {
	o, err := KernelOffsets()
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("no usable kernel BTF: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if o.RequestPart == 0 {
		t.Fatalf("request.part at offset 0 is implausible: %+v", o)
	}
}
