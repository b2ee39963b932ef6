package inproc

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/conformance"
)

type backend struct{}

func (backend) Name() string { return "inproc" }

type cluster struct{ net *Network }

func (backend) Start(t testing.TB, o conformance.Options) conformance.Cluster {
	cfg := DefaultConfig()
	cfg.TransportTimeoutNs = o.TransportTimeoutNs
	net, err := NewNetwork(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := net.Close(); err != nil {
			t.Error(err)
		}
	})
	for i := 1; i <= o.Nodes; i++ {
		if _, err := net.AddNode(rdma.NodeID(i), o.RegionBytes); err != nil {
			t.Fatal(err)
		}
	}
	if err := net.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll}); err != nil {
		t.Fatal(err)
	}
	return cluster{net}
}

func (c cluster) Fabric(id rdma.NodeID) rdma.Fabric { return c.net.Node(id) }
func (c cluster) Kill(id rdma.NodeID) error         { return c.net.Kill(id) }
func (c cluster) RetryExceededAfterNs() int64       { return c.net.cfg.TransportTimeoutNs }

// WaitUntil polls cond, yielding the processor between checks (the
// machine's cores are shared; a pure spin would starve timers).
func (c cluster) WaitUntil(cond func() bool, limitNs int64) bool {
	deadline := c.net.Now() + limitNs
	for {
		if cond() {
			return true
		}
		if c.net.Now() >= deadline {
			return cond()
		}
		runtime.Gosched()
	}
}

// Reconnect redoes the handshake between a and b: in one process a new
// queue pair is a reset of each end, keeping the connection values.
func (c cluster) Reconnect(a, b rdma.NodeID) error {
	for p := range rdma.NumPlanes {
		if err := errors.Join(c.net.Node(a).Conn(b, p).Reset(rdma.AccessAll), c.net.Node(b).Conn(a, p).Reset(rdma.AccessAll)); err != nil {
			return err
		}
	}
	return nil
}

func TestConformance(t *testing.T) { conformance.Run(t, backend{}) }

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueDepth = 0
	if _, err := NewNetwork(cfg); err == nil {
		t.Fatal("QueueDepth 0 accepted")
	}
}

// TestConcurrentPosters hammers one target from goroutines on every other
// node, with swaps on one shared word, to give the race detector and the
// atomics something to chew on.
func TestConcurrentPosters(t *testing.T) {
	c := backend{}.Start(t, conformance.Options{Nodes: 4, RegionBytes: 1 << 16, TransportTimeoutNs: 1e9}).(cluster)
	const rounds = 2000
	var wg sync.WaitGroup
	for id := rdma.NodeID(2); id <= 4; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := c.net.Node(id)
			cn := f.Conn(1, rdma.PlaneReplication)
			var buf [8]rdma.Completion
			for i := range rounds {
				// Add 1 to the shared counter at offset 0 by swapping.
				for {
					cur := binary.LittleEndian.Uint64(f.Region().Bytes()[8:])
					if _, err := cn.Post([]rdma.WorkRequest{{ID: uint64(i), Op: rdma.OpCompareSwap, LocalOffset: 8, RemoteOffset: 0, Length: 8, Compare: cur, Swap: cur + 1}}); err != nil {
						t.Error(err)
						return
					}
					for f.Poll(buf[:]) == 0 {
						runtime.Gosched()
					}
					if buf[0].Status != rdma.StatusSuccess {
						t.Errorf("swap: %+v", buf[0])
						return
					}
					if binary.LittleEndian.Uint64(f.Region().Bytes()[8:]) == cur {
						break // the swap won
					}
				}
			}
		}()
	}
	wg.Wait()
	if got := binary.LittleEndian.Uint64(c.net.Node(1).Region().Bytes()); got != 3*rounds {
		t.Fatalf("counter %d after %d increments", got, 3*rounds)
	}
}

func TestNoAllocsPerOp(t *testing.T) {
	c := backend{}.Start(t, conformance.Options{Nodes: 2, RegionBytes: 4096, TransportTimeoutNs: 1e9}).(cluster)
	f := c.net.Node(1)
	conn := f.Conn(2, rdma.PlaneReplication)
	wrs := []rdma.WorkRequest{{Op: rdma.OpWrite, Length: 64}, {Op: rdma.OpRead, LocalOffset: 64, Length: 64}, {Op: rdma.OpCompareSwap, LocalOffset: 128, RemoteOffset: 128, Length: 8}}
	var buf [4]rdma.Completion
	round := func() {
		if _, err := conn.Post(wrs); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < 3; got += f.Poll(buf[:]) {
		}
		_ = f.Region().Bytes()
	}
	for range 10 {
		round()
	}
	if a := testing.AllocsPerRun(1000, round); a != 0 {
		t.Fatalf("%v allocations per round", a)
	}
}
