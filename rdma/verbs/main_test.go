package verbs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"

	ibv "github.com/rdmaconsensus/mu/cgo/verbs"
	"github.com/rdmaconsensus/mu/rdma"
)

// TestMain fails the run if any verbs handle is left open.
func TestMain(m *testing.M) {
	code := m.Run()
	if n := ibv.LiveHandles(); n != 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d verbs handles leaked\n", n)
		code = 1
	}
	os.Exit(code)
}

// requireDevice skips when there is no RDMA device, unless MU_REQUIRE_RDMA=1.
func requireDevice(t testing.TB) {
	t.Helper()
	devs, err := ibv.Devices()
	if err == nil && len(devs) == 0 {
		err = ibv.ErrNoDevice
	}
	if err != nil {
		if os.Getenv("MU_REQUIRE_RDMA") == "1" {
			t.Fatalf("MU_REQUIRE_RDMA=1 but no RDMA device: %v", err)
		}
		t.Skipf("no RDMA device: %v", err)
	}
}

// cluster is n fabrics on the one local device, every pair connected on
// every plane through the port's loopback.
type cluster struct {
	fabrics map[rdma.NodeID]*Fabric
	killed  map[rdma.NodeID]bool
}

func newCluster(t testing.TB, n int, regionBytes int, tune func(*Config)) *cluster {
	t.Helper()
	requireDevice(t)
	cl := &cluster{fabrics: map[rdma.NodeID]*Fabric{}, killed: map[rdma.NodeID]bool{}}
	t.Cleanup(func() {
		for id, f := range cl.fabrics {
			if err := f.Close(); err != nil {
				t.Errorf("close node %d: %v", id, err)
			}
		}
	})
	for i := 1; i <= n; i++ {
		cfg := DefaultConfig()
		cfg.Self = rdma.NodeID(i)
		cfg.ClusterID = 0xC1
		cfg.RegionBytes = regionBytes
		// Most tests exercise every operation; least privilege has its own.
		cfg.RegionAccess = rdma.AccessAll
		cfg.InitialAccess = [rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll}
		for j := 1; j <= n; j++ {
			if j != i {
				cfg.Peers = append(cfg.Peers, rdma.NodeID(j))
			}
		}
		if tune != nil {
			tune(&cfg)
		}
		f, err := New(cfg)
		if err != nil {
			t.Fatalf("New(node %d): %v", i, err)
		}
		cl.fabrics[cfg.Self] = f
	}
	for i := 1; i <= n; i++ {
		for j := i + 1; j <= n; j++ {
			a, b := cl.fabrics[rdma.NodeID(i)], cl.fabrics[rdma.NodeID(j)]
			ea, err := a.Prepare(b.Self())
			if err != nil {
				t.Fatal(err)
			}
			eb, err := b.Prepare(a.Self())
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Connect(b.Self(), eb); err != nil {
				t.Fatal(err)
			}
			if err := b.Connect(a.Self(), ea); err != nil {
				t.Fatal(err)
			}
		}
	}
	return cl
}

func (cl *cluster) kill(id rdma.NodeID) error {
	f := cl.fabrics[id]
	if f == nil || cl.killed[id] {
		return errors.New("no such live node")
	}
	cl.killed[id] = true
	delete(cl.fabrics, id)
	// Destroying its queue pairs makes the device drop packets for them:
	// senders see no answer, as from a crashed host.
	return f.Close()
}

// waitUntil polls cond until it holds or limitNs of fabric time passed.
func waitUntil(f *Fabric, cond func() bool, limitNs int64) bool {
	start := f.Now()
	for {
		if cond() {
			return true
		}
		if f.Now()-start > limitNs {
			return false
		}
		runtime.Gosched()
	}
}

// pollN polls f until n completions arrived or limitNs passed.
func pollN(t testing.TB, f *Fabric, n int, limitNs int64) []rdma.Completion {
	t.Helper()
	var got []rdma.Completion
	buf := make([]rdma.Completion, 16)
	ok := waitUntil(f, func() bool {
		k := f.Poll(buf)
		got = append(got, buf[:k]...)
		return len(got) >= n
	}, limitNs)
	if !ok {
		t.Fatalf("node %d: %d of %d completions within %d ms: %+v", f.Self(), len(got), n, limitNs/1e6, got)
	}
	return got
}
