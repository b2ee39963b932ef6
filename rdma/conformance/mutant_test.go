package conformance_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/conformance"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// The suite must catch broken backends: each mutant wraps the in-process
// fabric with one deliberate bug, and some scenario has to fail on it.

type mutation struct {
	lieState        bool // State always reports ready
	reversePoll     bool // completions come back in reverse batch order
	instantRetry    bool // Kill only pretends; posts to the "dead" peer fail at once
	flushAsSuccess  bool // flushed completions report success
	garbleSwap      bool // a swap's returned old value is wrong
	dropUnsignaled  bool // unsignaled requests are never executed
	grantLeaks      bool // a write grant opens every replication connection of the fabric
	resetKeepsGrant bool // a reset keeps remote write once granted, whatever it is asked
}

type inprocBackend struct{}

func (inprocBackend) Name() string { return "inproc" }

type inprocCluster struct {
	net     *inproc.Network
	timeout int64
}

func (inprocBackend) Start(t testing.TB, o conformance.Options) conformance.Cluster {
	cfg := inproc.DefaultConfig()
	cfg.TransportTimeoutNs = o.TransportTimeoutNs
	net, err := inproc.NewNetwork(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	for i := 1; i <= o.Nodes; i++ {
		if _, err := net.AddNode(rdma.NodeID(i), o.RegionBytes); err != nil {
			t.Fatal(err)
		}
	}
	if err := net.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll}); err != nil {
		t.Fatal(err)
	}
	return &inprocCluster{net: net, timeout: o.TransportTimeoutNs}
}

func (c *inprocCluster) Fabric(id rdma.NodeID) rdma.Fabric { return c.net.Node(id) }
func (c *inprocCluster) Kill(id rdma.NodeID) error         { return c.net.Kill(id) }
func (c *inprocCluster) RetryExceededAfterNs() int64       { return c.timeout }
func (c *inprocCluster) WaitUntil(cond func() bool, limitNs int64) bool {
	deadline := c.net.Now() + limitNs
	for !cond() {
		if c.net.Now() > deadline {
			return cond()
		}
		runtime.Gosched()
	}
	return true
}

type mutantCluster struct {
	conformance.Cluster
	m       mutation
	fabrics map[rdma.NodeID]*mutantFabric
	dead    map[rdma.NodeID]bool
}

type mutantFabric struct {
	rdma.Fabric
	c     *mutantCluster
	fake  []rdma.Completion
	swaps map[uint64]uint64 // id -> local offset of a pending swap
	conns map[[2]int]*mutantConn
}

type mutantConn struct {
	rdma.Conn
	f       *mutantFabric
	granted bool // remote write was granted once
}

func (cn *mutantConn) SetRemoteAccess(a rdma.Access) error {
	if err := cn.Conn.SetRemoteAccess(a); err != nil {
		return err
	}
	if a&rdma.AccessRemoteWrite == 0 || cn.Plane() != rdma.PlaneReplication {
		return nil
	}
	cn.granted = true
	if cn.f.c.m.grantLeaks {
		for id := rdma.NodeID(1); id <= 16; id++ {
			if o := cn.f.Fabric.Conn(id, rdma.PlaneReplication); o != nil && id != cn.Peer() {
				_ = o.SetRemoteAccess(o.RemoteAccess() | rdma.AccessRemoteWrite)
			}
		}
	}
	return nil
}

func (cn *mutantConn) Reset(a rdma.Access) error {
	if cn.f.c.m.resetKeepsGrant && cn.granted {
		a |= rdma.AccessRemoteWrite
	}
	return cn.Conn.Reset(a)
}

func (c *mutantCluster) Fabric(id rdma.NodeID) rdma.Fabric {
	if f := c.fabrics[id]; f != nil {
		return f
	}
	f := &mutantFabric{Fabric: c.Cluster.Fabric(id), c: c, swaps: map[uint64]uint64{}, conns: map[[2]int]*mutantConn{}}
	c.fabrics[id] = f
	return f
}

// WaitUntil caps waits: a mutant that never gets there fails faster.
func (c *mutantCluster) WaitUntil(cond func() bool, limitNs int64) bool {
	return c.Cluster.WaitUntil(cond, min(limitNs, 300_000_000))
}

func (c *mutantCluster) Kill(id rdma.NodeID) error {
	if c.m.instantRetry {
		c.dead[id] = true
		return nil
	}
	return c.Cluster.Kill(id)
}

func (f *mutantFabric) Conn(peer rdma.NodeID, p rdma.Plane) rdma.Conn {
	cn := f.Fabric.Conn(peer, p)
	if cn == nil {
		return nil
	}
	k := [2]int{int(peer), int(p)}
	if f.conns[k] == nil {
		f.conns[k] = &mutantConn{Conn: cn, f: f}
	}
	return f.conns[k]
}

// Reconnect resets both ends, as the in-process backend does.
func (c *mutantCluster) Reconnect(a, b rdma.NodeID) error {
	for p := range rdma.NumPlanes {
		if err := errors.Join(c.Cluster.Fabric(a).Conn(b, p).Reset(rdma.AccessAll), c.Cluster.Fabric(b).Conn(a, p).Reset(rdma.AccessAll)); err != nil {
			return err
		}
	}
	return nil
}

func (f *mutantFabric) Poll(out []rdma.Completion) int {
	k := copy(out, f.fake)
	f.fake = f.fake[k:]
	k += f.Fabric.Poll(out[k:])
	m := f.c.m
	for i := range out[:k] {
		c := &out[i]
		if m.flushAsSuccess && c.Status == rdma.StatusFlushed {
			c.Status = rdma.StatusSuccess
		}
		if off, ok := f.swaps[c.ID]; ok && m.garbleSwap {
			binary.LittleEndian.PutUint64(f.Region().Bytes()[off:], 0xBAD)
			delete(f.swaps, c.ID)
		}
	}
	if m.reversePoll {
		for i, j := 0, k-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return k
}

func (cn *mutantConn) State() rdma.ConnState {
	if cn.f.c.m.lieState {
		return rdma.ConnReady
	}
	return cn.Conn.State()
}

func (cn *mutantConn) Post(wrs []rdma.WorkRequest) (int, error) {
	m := cn.f.c.m
	if m.instantRetry && cn.f.c.dead[cn.Peer()] {
		for _, wr := range wrs {
			cn.f.fake = append(cn.f.fake, rdma.Completion{ID: wr.ID, Op: wr.Op, Status: rdma.StatusRetryExceeded, Peer: cn.Peer(), Plane: cn.Plane()})
		}
		return len(wrs), nil
	}
	var keep []rdma.WorkRequest
	for _, wr := range wrs {
		if wr.Op == rdma.OpCompareSwap {
			cn.f.swaps[wr.ID] = wr.LocalOffset
		}
		if !(m.dropUnsignaled && wr.Unsignaled) {
			keep = append(keep, wr)
		}
	}
	n, err := cn.Conn.Post(keep)
	if err != nil {
		return n, err
	}
	return len(wrs), nil
}

// recorder is a conformance.T that remembers the first failure.
type recorder struct {
	failed  bool
	skipped bool
	msg     string
}

func (r *recorder) Helper()        {}
func (r *recorder) Fatal(a ...any) { r.Fatalf("%s", fmt.Sprint(a...)) }
func (r *recorder) Fatalf(f string, a ...any) {
	r.failed, r.msg = true, fmt.Sprintf(f, a...)
	runtime.Goexit()
}
func (r *recorder) Skipf(f string, a ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(f, a...)
	runtime.Goexit()
}

// runScenario runs s on c in its own goroutine, as testing does, so that
// Fatalf's Goexit ends only the scenario.
func runScenario(s conformance.Scenario, c conformance.Cluster) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(r, c)
	}()
	<-done
	return r
}

func TestSuiteCatchesBrokenBackends(t *testing.T) {
	mutants := []struct {
		name string
		m    mutation
	}{
		{"state never errors", mutation{lieState: true}},
		{"completions reordered", mutation{reversePoll: true}},
		{"retry exceeded at once", mutation{instantRetry: true}},
		{"flushed reported as success", mutation{flushAsSuccess: true}},
		{"swap returns a wrong old value", mutation{garbleSwap: true}},
		{"unsignaled requests dropped", mutation{dropUnsignaled: true}},
		{"a write grant opens every connection", mutation{grantLeaks: true}},
		{"a read-only reset keeps a past grant", mutation{resetKeepsGrant: true}},
	}
	for _, mu := range mutants {
		t.Run(mu.name, func(t *testing.T) {
			var caught []string
			for _, s := range conformance.Scenarios() {
				o := s.Opts
				o.TransportTimeoutNs = 20_000_000 // keep the dead-peer scenario short
				base := inprocBackend{}.Start(t, o)
				c := &mutantCluster{Cluster: base, m: mu.m, fabrics: map[rdma.NodeID]*mutantFabric{}, dead: map[rdma.NodeID]bool{}}
				if r := runScenario(s, c); r.failed {
					caught = append(caught, s.Name+": "+r.msg)
				}
			}
			if len(caught) == 0 {
				t.Fatal("no scenario noticed the bug")
			}
			t.Logf("caught by %d scenarios, first: %s", len(caught), caught[0])
		})
	}
	// And the unmutated backend passes every scenario.
	t.Run("no mutation", func(t *testing.T) {
		for _, s := range conformance.Scenarios() {
			c := &mutantCluster{Cluster: inprocBackend{}.Start(t, s.Opts), fabrics: map[rdma.NodeID]*mutantFabric{}, dead: map[rdma.NodeID]bool{}}
			if r := runScenario(s, c); r.failed || r.skipped {
				t.Fatalf("%s: %s", s.Name, r.msg)
			}
		}
	})
}
