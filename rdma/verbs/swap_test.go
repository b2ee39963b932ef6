package verbs

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

// handshake runs Prepare, Commit and Activate between a and b as the
// bootstrap does, returning a's and b's new endpoints.
func handshake(t *testing.T, a, b *Fabric) (ea, eb []rdma.Endpoint) {
	t.Helper()
	ea, err := a.Prepare(b.Self())
	if err != nil {
		t.Fatal(err)
	}
	eb, err = b.Prepare(a.Self())
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(a.Commit(b.Self(), ea, eb), b.Commit(a.Self(), eb, ea)); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(a.Activate(b.Self(), ea), b.Activate(a.Self(), eb)); err != nil {
		t.Fatal(err)
	}
	return ea, eb
}

// A re-handshake keeps the Conn the protocol holds, completes what the old
// queue pair owed as flushed, and traffic then flows on the new one.
func TestSwapKeepsConnAndFlushesOwed(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, func(c *Config) { c.SetTransportTimeoutNs(2e9) })
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	c12 := f1.VerbsConn(2, rdma.PlaneReplication)
	oldQPN := c12.QPN()
	// The target's queue pair goes to RESET: requests to it hang until
	// retried out, so they are still owed when the swap comes.
	if err := f2.VerbsConn(1, rdma.PlaneReplication).cur.qp.ToReset(); err != nil {
		t.Fatal(err)
	}
	wrs := []rdma.WorkRequest{{ID: 1, Op: rdma.OpWrite, Length: 8}, {ID: 2, Op: rdma.OpWrite, Length: 8, Unsignaled: true}, {ID: 3, Op: rdma.OpRead, LocalOffset: 64, Length: 8}}
	if n, err := c12.Post(wrs); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	start := f1.Now()
	ea, _ := handshake(t, f1, f2)
	t.Logf("re-handshake on one device (both sides' Prepare, Commit, Activate): %d µs", (f1.Now()-start)/1000)
	got := pollN(t, f1, 2, waitNs)
	if got[0].ID != 1 || got[1].ID != 3 || got[0].Status != rdma.StatusFlushed || got[1].Status != rdma.StatusFlushed || got[1].Op != rdma.OpRead || got[1].Peer != 2 {
		t.Fatalf("owed by the old queue pair: %+v, want flushed 1 and 3", got)
	}
	if f1.Conn(2, rdma.PlaneReplication) != rdma.Conn(c12) || c12.Swaps() != 2 || c12.QPN() == oldQPN || c12.QPN() != ea[0].QPN {
		t.Fatalf("after the swap: conn %p (was %p), %d swaps, qpn %#x (was %#x)", f1.VerbsConn(2, rdma.PlaneReplication), c12, c12.Swaps(), c12.QPN(), oldQPN)
	}
	if s := c12.State(); s != rdma.ConnReady {
		t.Fatalf("state after the swap %v", s)
	}
	f1.Region().Bytes()[0] = 0x5A
	if _, err := c12.Post([]rdma.WorkRequest{{ID: 4, Op: rdma.OpWrite, RemoteOffset: 128, Length: 1}}); err != nil {
		t.Fatal(err)
	}
	if c := pollN(t, f1, 1, waitNs)[0]; c.ID != 4 || c.Status != rdma.StatusSuccess {
		t.Fatalf("write on the new queue pair: %+v", c)
	}
	if f2.Region().Bytes()[128] != 0x5A {
		t.Fatal("write on the new queue pair did not land")
	}
	// Nothing more: the flushed ones came once, the dropped unsignaled one
	// never.
	if extra := drainFor(f1, 20_000_000); len(extra) != 0 {
		t.Fatalf("stray completions: %+v", extra)
	}
}

// Prepared queue pairs that are aborted, or never activated, change
// nothing in service; too many prepared at once are refused.
func TestPreparedSetsLeaveServiceAlone(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, nil)
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	c12 := f1.VerbsConn(2, rdma.PlaneReplication)
	before := f1.LocalEndpoints(2)
	var sets [][]rdma.Endpoint
	for range maxStagedPerPeer {
		e, err := f1.Prepare(2)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, e)
	}
	if _, err := f1.Prepare(2); !errors.Is(err, ErrBusy) {
		t.Fatalf("Prepare beyond %d in flight = %v, want ErrBusy", maxStagedPerPeer, err)
	}
	// One committed towards the peer's current endpoints, never activated.
	if err := f1.Commit(2, sets[0], f2.LocalEndpoints(1)); err != nil {
		t.Fatal(err)
	}
	if err := f1.Activate(2, sets[1]); !errors.Is(err, ErrEndpoint) {
		t.Errorf("Activate before Commit = %v, want ErrEndpoint", err)
	}
	for _, e := range sets {
		f1.Abort(2, e)
	}
	if err := f1.Activate(2, sets[0]); !errors.Is(err, ErrEndpoint) {
		t.Errorf("Activate after Abort = %v, want ErrEndpoint", err)
	}
	if got := f1.LocalEndpoints(2); !slices.Equal(got, before) || c12.Swaps() != 1 {
		t.Fatalf("in service %v after aborts (was %v), %d swaps", got, before, c12.Swaps())
	}
	if _, err := c12.Post([]rdma.WorkRequest{{ID: 9, Op: rdma.OpWrite, Length: 8}}); err != nil {
		t.Fatal(err)
	}
	if c := pollN(t, f1, 1, waitNs)[0]; c.ID != 9 || c.Status != rdma.StatusSuccess {
		t.Fatalf("write after aborted handshakes: %+v", c)
	}
	if _, err := f1.Prepare(9); !errors.Is(err, ErrConfig) {
		t.Errorf("Prepare(non-peer) = %v", err)
	}
	e, err := f1.Prepare(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := f1.Connect(2, e[:1]); !errors.Is(err, ErrEndpoint) {
		t.Errorf("Connect with one endpoint = %v", err)
	}
	bad := slices.Clone(f2.LocalEndpoints(1))
	bad[0].ClusterID++
	if err := f1.Connect(2, bad); !errors.Is(err, ErrEndpoint) {
		t.Errorf("Connect with a foreign cluster = %v", err)
	}
}

// Before the first handshake a peer's Conn exists and is down.
func TestConnBeforeHandshake(t *testing.T) {
	requireDevice(t)
	cfg := DefaultConfig()
	cfg.Self, cfg.Peers, cfg.RegionBytes = 1, []rdma.NodeID{2}, 1<<16
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := f.Conn(2, rdma.PlaneReplication)
	if c == nil || c.State() != rdma.ConnDown || f.Conn(3, rdma.PlaneReplication) != nil {
		t.Fatalf("Conn before a handshake: %v (state %v); Conn(non-peer) %v", c, c.State(), f.Conn(3, rdma.PlaneReplication))
	}
	if _, err := c.Post([]rdma.WorkRequest{{ID: 1, Op: rdma.OpWrite, Length: 8}}); !errors.Is(err, rdma.ErrConnError) {
		t.Errorf("Post before a handshake = %v, want ErrConnError", err)
	}
	if err := c.Reset(rdma.AccessRemoteRead); !errors.Is(err, rdma.ErrConnError) {
		t.Errorf("Reset before a handshake = %v, want ErrConnError", err)
	}
	if err := c.SetRemoteAccess(rdma.AccessAll); !errors.Is(err, ErrConfig) {
		t.Errorf("granting atomics on a region without them = %v, want ErrConfig", err)
	}
}

// drainFor polls f for ns and returns whatever completed.
func drainFor(f *Fabric, ns int64) []rdma.Completion {
	var got []rdma.Completion
	buf := make([]rdma.Completion, 16)
	waitUntil(f, func() bool {
		k := f.Poll(buf)
		got = append(got, buf[:k]...)
		return false
	}, ns)
	return got
}

// Handshakes swap queue pairs while a driver posts and polls on another
// goroutine: every request completes exactly once, successfully or
// flushed, and the driver never sees a queue pair being destroyed.
func TestSwapUnderTraffic(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, func(c *Config) { c.SetTransportTimeoutNs(2e9) })
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	c12 := f1.Conn(2, rdma.PlaneReplication)
	const swaps = 5
	stop := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		seen := map[uint64]rdma.Status{}
		buf := make([]rdma.Completion, 32)
		next, outstanding := uint64(1), 0
		for stopped := false; !stopped || outstanding > 0; {
			select {
			case <-stop:
				stopped = true
			default:
			}
			if !stopped && outstanding < 16 {
				if n, err := c12.Post([]rdma.WorkRequest{{ID: next, Op: rdma.OpWrite, RemoteOffset: 64 * (next % 64), Length: 64}}); err == nil && n == 1 {
					next++
					outstanding++
				}
			}
			k := f1.Poll(buf)
			for _, c := range buf[:k] {
				if _, dup := seen[c.ID]; dup {
					result <- fmt.Errorf("request %d completed twice", c.ID)
					return
				}
				if c.Status != rdma.StatusSuccess && c.Status != rdma.StatusFlushed {
					result <- fmt.Errorf("request %d: %v", c.ID, c.Status)
					return
				}
				seen[c.ID] = c.Status
				outstanding--
			}
			if stopped && outstanding > 0 {
				runtime.Gosched()
			}
		}
		if uint64(len(seen)) != next-1 {
			result <- fmt.Errorf("%d completions for %d requests", len(seen), next-1)
			return
		}
		flushed := 0
		for _, s := range seen {
			if s == rdma.StatusFlushed {
				flushed++
			}
		}
		t.Logf("%d writes across %d swaps, %d flushed", next-1, swaps, flushed)
		result <- nil
	}()
	for range swaps {
		handshake(t, f1, f2)
	}
	close(stop)
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the driver never drained its requests")
	}
}
