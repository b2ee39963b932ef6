package consensus

import (
	"os/exec"
	"strings"
	"testing"
)

// The core links into latency-critical programs: it must not drag in the
// hardware collectors' dependencies (SQLite, eBPF), metrics exporters or
// an HTTP stack, nor the device discovery (sysfs, rtnetlink) and TLS
// bootstrap that only a node wiring real RDMA needs (rdma/discover,
// rdma/bootstrap). Hardware verdicts reach it through Fence and
// SetDegraded, latency grading through package hwmon/failslow.
func TestCoreStaysLight(t *testing.T) {
	forbidden := []string{
		"modernc.org/sqlite",
		"github.com/cilium/ebpf",
		"github.com/prometheus/",
		"net/http",
		"github.com/rdmaconsensus/mu/hwmon", // the collectors; hwmon/failslow is allowed
		"github.com/Mellanox/rdmamap",
		"github.com/jsimonetti/rtnetlink",
		"crypto/tls",
		"github.com/rdmaconsensus/mu/rdma/bootstrap",
		"github.com/rdmaconsensus/mu/rdma/discover",
	}
	core := []string{".", "../pullscore", "../permissions", "../sim", "../rdma", "../rdma/inproc", "../hwmon/failslow", "../quorum"}
	out, err := exec.Command("go", append([]string{"list", "-deps"}, core...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") && !strings.HasPrefix(dep, "github.com/rdmaconsensus/mu/hwmon/failslow") {
				t.Errorf("the core imports %s (forbidden: %s)", dep, f)
			}
		}
	}
}
