package verbs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

const waitNs = 5_000_000_000

func TestNewWithoutDeviceIsNotSupported(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Device = "no-such-device"
	_, err := New(cfg)
	if !errors.Is(err, rdma.ErrNotSupported) {
		t.Fatalf("New on a missing device = %v, want ErrNotSupported", err)
	}
}

func TestWriteReadAcrossMTU(t *testing.T) {
	for _, inline := range []uint32{0, 256} {
		t.Run(fmt.Sprintf("inline%d", inline), func(t *testing.T) {
			testWriteRead(t, inline)
		})
	}
}

func testWriteRead(t *testing.T, inline uint32) {
	cl := newCluster(t, 2, 1<<20, func(c *Config) { c.MaxInline = inline })
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	if inline > 0 && f1.MaxInline() == 0 {
		t.Fatalf("asked for %d B inline, got none", inline)
	}
	c12 := f1.Conn(2, rdma.PlaneReplication)
	t.Logf("device %s, max inline %d", f1.Device(), f1.MaxInline())
	rng := rand.New(rand.NewPCG(3, 4))
	const dst, back = 256 << 10, 512 << 10
	id := uint64(0)
	for _, n := range []uint32{1, 8, 64, 255, 256, 257, 1023, 1024, 1025, 2048, 4097, 16 << 10, 64 << 10} {
		src := f1.Region().Bytes()[:n]
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		clear(f2.Region().Bytes()[dst : dst+n+1])
		id++
		if _, err := c12.Post([]rdma.WorkRequest{{ID: id, Op: rdma.OpWrite, RemoteOffset: dst, Length: n}}); err != nil {
			t.Fatal(err)
		}
		c := pollN(t, f1, 1, waitNs)[0]
		if c != (rdma.Completion{ID: id, Op: rdma.OpWrite, Status: rdma.StatusSuccess, Peer: 2, Plane: rdma.PlaneReplication}) {
			t.Fatalf("write %d B: %+v", n, c)
		}
		got := f2.Region().Bytes()[dst : dst+n+1]
		if !bytes.Equal(got[:n], src) || got[n] != 0 {
			t.Fatalf("write %d B: data differs at the target", n)
		}
		id++
		clear(f1.Region().Bytes()[back : back+n])
		if _, err := f1.Conn(2, rdma.PlaneBackground).Post([]rdma.WorkRequest{{ID: id, Op: rdma.OpRead, LocalOffset: back, RemoteOffset: dst, Length: n}}); err != nil {
			t.Fatal(err)
		}
		c = pollN(t, f1, 1, waitNs)[0]
		if c != (rdma.Completion{ID: id, Op: rdma.OpRead, Status: rdma.StatusSuccess, Peer: 2, Plane: rdma.PlaneBackground}) {
			t.Fatalf("read %d B: %+v", n, c)
		}
		if !bytes.Equal(f1.Region().Bytes()[back:back+n], src) {
			t.Fatalf("read %d B: data differs", n)
		}
	}
	if _, err := c12.Post([]rdma.WorkRequest{{ID: 1, Op: rdma.OpWrite, RemoteOffset: 1<<20 - 4, Length: 8}}); !errors.Is(err, rdma.ErrOutOfBounds) {
		t.Errorf("write past the remote region = %v, want ErrOutOfBounds", err)
	}
}

func TestRevokeFailsWriterAndErrorsBoth(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, nil)
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	c12, c21 := f1.Conn(2, rdma.PlaneReplication), f2.Conn(1, rdma.PlaneReplication)
	start := f2.Now()
	if err := c21.SetRemoteAccess(rdma.AccessRemoteRead); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoke took %d µs", (f2.Now()-start)/1000)
	// Unsignaled: errors complete anyway.
	if _, err := c12.Post([]rdma.WorkRequest{{ID: 7, Op: rdma.OpWrite, RemoteOffset: 64, Length: 16, Unsignaled: true}}); err != nil {
		t.Fatal(err)
	}
	c := pollN(t, f1, 1, waitNs)[0]
	if c.ID != 7 || c.Op != rdma.OpWrite || c.Status != rdma.StatusRemoteInvalidRequest || !errors.Is(c.Status.Err(), rdma.ErrRemoteInvalidRequest) {
		t.Fatalf("write through revoked pair: %+v", c)
	}
	if !waitUntil(f1, func() bool { return c12.State() == rdma.ConnError && c21.State() == rdma.ConnError }, waitNs) {
		t.Fatalf("states %v / %v, want both error", c12.State(), c21.State())
	}
	if err := c21.SetRemoteAccess(rdma.AccessAll); !errors.Is(err, rdma.ErrConnError) {
		t.Errorf("SetRemoteAccess on an errored pair = %v, want ErrConnError", err)
	}
	// Posted while in error: flushed, and a reset that follows without a
	// poll keeps the real status.
	if _, err := c12.Post([]rdma.WorkRequest{{ID: 8, Op: rdma.OpRead, Length: 8}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(f1, func() bool { return false }, 20_000_000) // let the flush land in the CQ
	for _, c := range []rdma.Conn{c12, c21} {
		start := f1.Now()
		if err := c.Reset(rdma.AccessAll); err != nil {
			t.Fatal(err)
		}
		t.Logf("reset of %v took %d µs", c, (f1.Now()-start)/1000)
	}
	if c := pollN(t, f1, 1, waitNs)[0]; c.ID != 8 || c.Status != rdma.StatusFlushed || c.Op != rdma.OpRead {
		t.Fatalf("request posted in error: %+v, want flushed read 8", c)
	}
	if c12.State() != rdma.ConnReady || c21.State() != rdma.ConnReady || c21.RemoteAccess() != rdma.AccessAll {
		t.Fatalf("after reset: %v %v access %v", c12.State(), c21.State(), c21.RemoteAccess())
	}
	f1.Region().Bytes()[0] = 0x3C
	if _, err := c12.Post([]rdma.WorkRequest{{ID: 9, Op: rdma.OpWrite, RemoteOffset: 64, Length: 1}}); err != nil {
		t.Fatal(err)
	}
	if c := pollN(t, f1, 1, waitNs)[0]; c.ID != 9 || c.Status != rdma.StatusSuccess {
		t.Fatalf("write after reset: %+v", c)
	}
	if f2.Region().Bytes()[64] != 0x3C {
		t.Fatal("write after reset did not land")
	}
}

func TestResetFlushesOutstanding(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, func(c *Config) { c.SetTransportTimeoutNs(2e9) })
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	// The target's pair goes to RESET: requests to it hang until retried
	// out. Resetting the writer's end first must complete them as flushed.
	if err := f2.VerbsConn(1, rdma.PlaneReplication).cur.qp.ToReset(); err != nil {
		t.Fatal(err)
	}
	c12 := f1.Conn(2, rdma.PlaneReplication)
	wrs := []rdma.WorkRequest{{ID: 1, Op: rdma.OpWrite, Length: 8}, {ID: 2, Op: rdma.OpWrite, Length: 8, Unsignaled: true}, {ID: 3, Op: rdma.OpRead, Length: 8}}
	if n, err := c12.Post(wrs); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	if err := c12.Reset(rdma.AccessAll); err != nil {
		t.Fatal(err)
	}
	got := pollN(t, f1, 2, waitNs)
	if got[0].ID != 1 || got[1].ID != 3 || got[0].Status != rdma.StatusFlushed || got[1].Status != rdma.StatusFlushed || got[1].Op != rdma.OpRead {
		t.Fatalf("after reset: %+v, want flushed 1 and 3", got)
	}
	if err := f2.Conn(1, rdma.PlaneReplication).Reset(rdma.AccessAll); err != nil {
		t.Fatal(err)
	}
	if _, err := c12.Post([]rdma.WorkRequest{{ID: 4, Op: rdma.OpWrite, Length: 8}}); err != nil {
		t.Fatal(err)
	}
	if c := pollN(t, f1, 1, waitNs)[0]; c.ID != 4 || c.Status != rdma.StatusSuccess {
		t.Fatalf("after both resets: %+v", c)
	}
}

func TestDeadPeerRetryExceeded(t *testing.T) {
	const timeoutNs = 50_000_000
	cl := newCluster(t, 3, 1<<16, func(c *Config) { c.SetTransportTimeoutNs(timeoutNs) })
	f1 := cl.fabrics[1]
	if err := cl.kill(2); err != nil {
		t.Fatal(err)
	}
	start := f1.Now()
	if _, err := f1.Conn(2, rdma.PlaneBackground).Post([]rdma.WorkRequest{{ID: 1, Op: rdma.OpRead, Length: 8}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f1.Conn(3, rdma.PlaneBackground).Post([]rdma.WorkRequest{{ID: 2, Op: rdma.OpRead, Length: 8}}); err != nil {
		t.Fatal(err)
	}
	got := pollN(t, f1, 2, waitNs)
	el := f1.Now() - start
	t.Logf("retry exceeded after %d ms (configured %d ms)", el/1e6, f1.cfg.TransportTimeoutNs()/1e6)
	if got[0].ID != 2 || got[0].Status != rdma.StatusSuccess {
		t.Fatalf("live peer: %+v", got[0])
	}
	if got[1].ID != 1 || got[1].Status != rdma.StatusRetryExceeded || got[1].Peer != 2 || !errors.Is(got[1].Status.Err(), rdma.ErrRetryExceeded) {
		t.Fatalf("dead peer: %+v", got[1])
	}
	if el < f1.cfg.TransportTimeoutNs()/2 {
		t.Errorf("retry exceeded after %d ns, sooner than the transport timeout", el)
	}
	if s := f1.Conn(2, rdma.PlaneBackground).State(); s != rdma.ConnError {
		t.Errorf("conn to dead peer %v, want error", s)
	}
}

func TestCompareSwap(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, nil)
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	le := binary.LittleEndian
	le.PutUint64(f2.Region().Bytes()[800:], 41)
	c := f1.Conn(2, rdma.PlaneBackground)
	cas := func(id, cmp, swp uint64) uint64 {
		if _, err := c.Post([]rdma.WorkRequest{{ID: id, Op: rdma.OpCompareSwap, LocalOffset: 16, RemoteOffset: 800, Length: 8, Compare: cmp, Swap: swp}}); err != nil {
			t.Fatal(err)
		}
		if got := pollN(t, f1, 1, waitNs)[0]; got.ID != id || got.Op != rdma.OpCompareSwap || got.Status != rdma.StatusSuccess {
			t.Fatalf("CAS %d: %+v", id, got)
		}
		return le.Uint64(f1.Region().Bytes()[16:])
	}
	if old := cas(1, 41, 42); old != 41 || le.Uint64(f2.Region().Bytes()[800:]) != 42 {
		t.Fatalf("successful CAS: old %d, now %d", old, le.Uint64(f2.Region().Bytes()[800:]))
	}
	if old := cas(2, 41, 43); old != 42 || le.Uint64(f2.Region().Bytes()[800:]) != 42 {
		t.Fatalf("failed CAS: old %d, now %d", old, le.Uint64(f2.Region().Bytes()[800:]))
	}
	if _, err := c.Post([]rdma.WorkRequest{{ID: 3, Op: rdma.OpCompareSwap, RemoteOffset: 801, Length: 8}}); !errors.Is(err, rdma.ErrLocal) {
		t.Errorf("misaligned CAS = %v", err)
	}
}

func TestBatch32AndQueueFull(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, func(c *Config) { c.SendQueueDepth = 32 })
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	c := f1.Conn(2, rdma.PlaneReplication)
	wrs := make([]rdma.WorkRequest, 32)
	for i := range wrs {
		f1.Region().Bytes()[i] = byte(i + 1)
		wrs[i] = rdma.WorkRequest{ID: uint64(100 + i), Op: rdma.OpWrite, LocalOffset: uint64(i), RemoteOffset: uint64(4096 + i), Length: 1}
	}
	if n, err := c.Post(wrs); n != 32 || err != nil {
		t.Fatalf("Post(32) = %d, %v", n, err)
	}
	// The queue holds 32: one more does not fit until completions are seen.
	if n, err := c.Post(wrs[:1]); n != 0 || !errors.Is(err, rdma.ErrQueueFull) {
		t.Fatalf("Post on a full queue = %d, %v", n, err)
	}
	got := pollN(t, f1, 32, waitNs)
	for i, cq := range got {
		if cq.ID != uint64(100+i) || cq.Status != rdma.StatusSuccess {
			t.Fatalf("completion %d: %+v", i, cq)
		}
	}
	if !bytes.Equal(f1.Region().Bytes()[:32], f2.Region().Bytes()[4096:4096+32]) {
		t.Fatal("batched writes: data differs")
	}
	if n, err := c.Post(wrs[:1]); n != 1 || err != nil {
		t.Fatalf("Post after draining = %d, %v", n, err)
	}
	pollN(t, f1, 1, waitNs)
}

func TestPostPollDoNotAllocate(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, nil)
	f1 := cl.fabrics[1]
	c := f1.Conn(2, rdma.PlaneReplication)
	wrs := []rdma.WorkRequest{{ID: 1, Op: rdma.OpWrite, Length: 64}, {ID: 2, Op: rdma.OpRead, LocalOffset: 128, Length: 64}}
	out := make([]rdma.Completion, 4)
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := c.Post(wrs); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < 2; {
			got += f1.Poll(out)
		}
	})
	if allocs != 0 {
		t.Errorf("Post+Poll allocates %.1f times", allocs)
	}
}
