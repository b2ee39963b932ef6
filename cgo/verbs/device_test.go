package verbs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"
)

// openDevice opens the first RDMA device, skipping when there is none unless
// MU_REQUIRE_RDMA=1, in which case a missing device fails the test.
func openDevice(t testing.TB) *Context {
	t.Helper()
	devs, err := Devices()
	if err == nil && len(devs) == 0 {
		err = ErrNoDevice
	}
	if err != nil {
		if os.Getenv("MU_REQUIRE_RDMA") == "1" {
			t.Fatalf("MU_REQUIRE_RDMA=1 but no RDMA device: %v", err)
		}
		t.Skipf("no RDMA device: %v", err)
	}
	ctx, err := Open(devs[0].Name)
	if err != nil {
		t.Fatalf("Open(%s): %v", devs[0].Name, err)
	}
	t.Cleanup(func() { closeOK(t, ctx) })
	return ctx
}

func closeOK(t testing.TB, c interface{ Close() error }) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Errorf("Close %T: %v", c, err)
	}
}

const (
	testRegionBytes = 1 << 20
	testPort        = 1
	testSQDepth     = 64
)

// pair is two RC QPs on one device connected to each other through the
// port's loopback, each with its own region, as two nodes would be.
type pair struct {
	ctx      *Context
	pd       *PD
	cq       *CQ
	mem      [2]*Memory
	mr       [2]*MR
	qp       [2]*QP
	params   [2]ConnParams // params[i] moves qp[i] to RTS towards qp[1-i]
	wcs      []WC
	nextWRID uint64
}

type pairOpts struct {
	timeout, retry uint8
}

func newPair(t *testing.T, o pairOpts) *pair {
	t.Helper()
	ctx := openDevice(t)
	pa, err := ctx.QueryPort(testPort)
	if err != nil {
		t.Fatal(err)
	}
	if pa.State != PortActive {
		t.Fatalf("port %d of %s is %v, want active", testPort, ctx.Name(), pa.State)
	}
	gidIndex, gid, err := ctx.FindIPv4GID(testPort)
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{ctx: ctx, wcs: make([]WC, 64)}
	if p.pd, err = ctx.AllocPD(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, p.pd) })
	if p.cq, err = ctx.CreateCQ(256); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, p.cq) })
	for i := range 2 {
		if p.mem[i], err = AllocMemory(testRegionBytes); err != nil {
			t.Fatal(err)
		}
		mem := p.mem[i]
		t.Cleanup(func() { closeOK(t, mem) })
		if p.mr[i], err = p.pd.RegisterMemory(mem, AccessLocalWrite|AccessRemoteWrite|AccessRemoteRead|AccessRemoteAtomic); err != nil {
			t.Fatal(err)
		}
		mr := p.mr[i]
		t.Cleanup(func() { closeOK(t, mr) })
		if p.qp[i], err = p.pd.CreateQP(p.cq, QPConfig{MaxSendWR: testSQDepth, MaxInline: 64}); err != nil {
			t.Fatal(err)
		}
		qp := p.qp[i]
		t.Cleanup(func() { closeOK(t, qp) })
	}
	timeout, retry := uint8(14), uint8(7)
	if o.timeout != 0 {
		timeout, retry = o.timeout, o.retry
	}
	rd := uint8(min(16, ctx.Attr().MaxQPRdAtom, ctx.Attr().MaxQPInitRdAtom))
	psn := [2]uint32{rand.Uint32() & maxPSN, rand.Uint32() & maxPSN}
	for i := range 2 {
		p.params[i] = ConnParams{
			DGID: gid, DestQPN: p.qp[1-i].Num(), RQPSN: psn[1-i], SQPSN: psn[i],
			Access: AccessRemoteWrite | AccessRemoteRead | AccessRemoteAtomic,
			Port:   testPort, SGIDIndex: uint8(gidIndex), HopLimit: 64, PathMTU: pa.ActiveMTU,
			Timeout: timeout, RetryCount: retry, RNRRetry: 7, MinRNRTimer: 12,
			MaxRdAtomic: rd, MaxDestRdAtomic: rd,
		}
	}
	for i := range 2 {
		qp := p.qp[i]
		if err := qp.ToInit(testPort, p.params[i].Access); err != nil {
			t.Fatal(err)
		}
		if err := qp.ToRTR(&p.params[i]); err != nil {
			t.Fatal(err)
		}
		if err := qp.ToRTS(&p.params[i]); err != nil {
			t.Fatal(err)
		}
		if s, err := qp.State(); err != nil || s != QPRTS {
			t.Fatalf("qp%d state %v, %v; want RTS", i, s, err)
		}
	}
	return p
}

func (p *pair) addr(i int, off uint64) uint64 { return p.mem[i].Addr() + off }

// wr builds a signaled request from qp[from] to the region of qp[1-from].
func (p *pair) wr(from int, op Opcode, localOff, remoteOff uint64, n uint32) SendWR {
	p.nextWRID++
	return SendWR{
		ID: p.nextWRID, Opcode: op, Flags: FlagSignaled, Length: n,
		LocalAddr: p.addr(from, localOff), LKey: p.mr[from].LKey(),
		RemoteAddr: p.addr(1-from, remoteOff), RKey: p.mr[1-from].RKey(),
	}
}

// waitWC polls until n completions arrived or the deadline passed.
func (p *pair) waitWC(t *testing.T, n int, within time.Duration) []WC {
	t.Helper()
	var got []WC
	deadline := time.Now().Add(within)
	for len(got) < n {
		k, err := p.cq.Poll(p.wcs)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.wcs[:k]...)
		if k == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("got %d of %d completions within %v: %+v", len(got), n, within, got)
			}
			runtime.Gosched()
		}
	}
	return got
}

func (p *pair) post1(t *testing.T, from int, w SendWR) {
	t.Helper()
	if n, err := p.qp[from].Post([]SendWR{w}); err != nil || n != 1 {
		t.Fatalf("Post %v: n=%d err=%v", w.Opcode, n, err)
	}
}

func (p *pair) waitState(t *testing.T, i int, want QPState, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s, err := p.qp[i].State()
		if err != nil {
			t.Fatal(err)
		}
		if s == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("qp%d state %v after %v, want %v", i, s, within, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDevicePortGID(t *testing.T) {
	ctx := openDevice(t)
	pa, err := ctx.QueryPort(testPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s port %d: state %v, active MTU %v, max MTU %v, link %v, %d GIDs, attr %+v",
		ctx.Name(), testPort, pa.State, pa.ActiveMTU, pa.MaxMTU, pa.LinkLayer, pa.GIDTableLen, ctx.Attr())
	if pa.State != PortActive || pa.ActiveMTU.Bytes() == 0 || pa.GIDTableLen == 0 {
		t.Errorf("port attributes implausible: %+v", pa)
	}
	if pa.LinkLayer != LinkLayerEthernet && pa.LinkLayer != LinkLayerInfiniBand {
		t.Errorf("link layer %v", pa.LinkLayer)
	}
	idx, gid, err := ctx.FindIPv4GID(testPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("IPv4 GID index %d: %v", idx, gid)
	if _, err := ctx.QueryPort(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("QueryPort(0) = %v, want ErrInvalid", err)
	}
	if _, err := Open("no-such-device"); !errors.Is(err, ErrNoDevice) {
		t.Errorf("Open(no-such-device) = %v, want ErrNoDevice", err)
	}
}

func TestCloseOrder(t *testing.T) {
	ctx := openDevice(t)
	pd, err := ctx.AllocPD()
	if err != nil {
		t.Fatal(err)
	}
	if err := ctx.Close(); !errors.Is(err, ErrBusy) {
		t.Errorf("Context.Close with open PD = %v, want ErrBusy", err)
	}
	mem, err := AllocMemory(4096)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pd.RegisterMemory(mem, AccessRemoteWrite); !errors.Is(err, ErrInvalid) {
		t.Errorf("remote write without local write = %v, want ErrInvalid", err)
	}
	mr, err := pd.RegisterMemory(mem, AccessLocalWrite|AccessRemoteRead)
	if err != nil {
		t.Fatal(err)
	}
	if err := pd.Close(); !errors.Is(err, ErrBusy) {
		t.Errorf("PD.Close with open MR = %v, want ErrBusy", err)
	}
	if err := mem.Close(); !errors.Is(err, ErrBusy) {
		t.Errorf("Memory.Close with open MR = %v, want ErrBusy", err)
	}
	closeOK(t, mr)
	closeOK(t, mem)
	closeOK(t, pd)
}

func TestWriteReadSizes(t *testing.T) {
	p := newPair(t, pairOpts{})
	mtu := 1024
	sizes := []uint32{1, 7, 63, 64, 65, 256, uint32(mtu - 1), uint32(mtu), uint32(mtu + 1), 4096, 3*uint32(mtu) + 5, 32 << 10, 64 << 10}
	t.Logf("QP max inline %d bytes", p.qp[0].MaxInline())
	const srcOff, dstOff, backOff = 0, 128 << 10, 256 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range sizes {
		src := p.mem[0].Bytes()[srcOff : srcOff+n]
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		clear(p.mem[1].Bytes()[dstOff : dstOff+n+1])
		w := p.wr(0, OpWrite, srcOff, dstOff, n)
		p.post1(t, 0, w)
		wc := p.waitWC(t, 1, 5*time.Second)[0]
		if err := wc.Err(); err != nil || wc.ID != w.ID || wc.Opcode != WCWrite || wc.QPNum != p.qp[0].Num() {
			t.Fatalf("write %d B: completion %+v err %v", n, wc, err)
		}
		dst := p.mem[1].Bytes()[dstOff : dstOff+n+1]
		if !bytes.Equal(dst[:n], src) || dst[n] != 0 {
			t.Fatalf("write %d B: data differs at the target", n)
		}
		// Read it back from qp1's side into qp0's region.
		back := p.mem[0].Bytes()[backOff : backOff+n]
		clear(back)
		r := p.wr(0, OpRead, backOff, dstOff, n)
		p.post1(t, 0, r)
		wc = p.waitWC(t, 1, 5*time.Second)[0]
		if err := wc.Err(); err != nil || wc.ID != r.ID || wc.Opcode != WCRead || wc.ByteLen != n {
			t.Fatalf("read %d B: completion %+v err %v", n, wc, err)
		}
		if !bytes.Equal(back, src) {
			t.Fatalf("read %d B: data differs", n)
		}
	}
}

func TestRevokedWriteThenReset(t *testing.T) {
	p := newPair(t, pairOpts{})
	// The target (qp1) revokes remote write, keeping read.
	start := time.Now()
	if err := p.qp[1].SetAccess(AccessRemoteRead); err != nil {
		t.Fatalf("SetAccess on RTS: %v", err)
	}
	t.Logf("access change on RTS took %v", time.Since(start))
	p.post1(t, 0, p.wr(0, OpWrite, 0, 0, 64))
	wc := p.waitWC(t, 1, 5*time.Second)[0]
	if wc.Status != WCRemInvReqErr {
		t.Fatalf("write after revoke: status %v (%s), want IBV_WC_REM_INV_REQ_ERR", wc.Status, wc.Status.Ident())
	}
	p.waitState(t, 0, QPError, 2*time.Second)
	p.waitState(t, 1, QPError, 2*time.Second)
	// A post on an ERROR QP is flushed.
	p.post1(t, 0, p.wr(0, OpWrite, 0, 0, 8))
	if wc := p.waitWC(t, 1, 5*time.Second)[0]; wc.Status != WCWRFlushErr {
		t.Fatalf("post in ERROR: status %v, want flushed", wc.Status)
	}
	// Reset both ends; writes flow again.
	for i := range 2 {
		start := time.Now()
		if err := p.qp[i].Connect(&p.params[i]); err != nil {
			t.Fatalf("reset cycle qp%d: %v", i, err)
		}
		t.Logf("reset cycle qp%d took %v", i, time.Since(start))
	}
	p.mem[0].Bytes()[0] = 0xAB
	p.post1(t, 0, p.wr(0, OpWrite, 0, 512, 1))
	if wc := p.waitWC(t, 1, 5*time.Second)[0]; wc.Err() != nil {
		t.Fatalf("write after reset: %v", wc.Err())
	}
	if p.mem[1].Bytes()[512] != 0xAB {
		t.Fatal("write after reset did not land")
	}
}

func TestDeadPeerRetryExceeded(t *testing.T) {
	// timeout 4.096 µs * 2^10 ≈ 4 ms, 2 retries: the error comes in tens of ms.
	p := newPair(t, pairOpts{timeout: 10, retry: 2})
	if err := p.qp[1].ToReset(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.post1(t, 0, p.wr(0, OpWrite, 0, 0, 32))
	wc := p.waitWC(t, 1, 10*time.Second)[0]
	t.Logf("retry exceeded after %v", time.Since(start))
	if wc.Status != WCRetryExcErr {
		t.Fatalf("write to reset peer: status %v (%s), want IBV_WC_RETRY_EXC_ERR", wc.Status, wc.Status.Ident())
	}
	p.waitState(t, 0, QPError, time.Second)
}

func TestCompareSwap(t *testing.T) {
	p := newPair(t, pairOpts{})
	if p.ctx.Attr().AtomicCap == 0 {
		t.Skip("device has no atomics")
	}
	const word, result = 4096, 8192
	binary.LittleEndian.PutUint64(p.mem[1].Bytes()[word:], 5)
	cas := func(cmp, swp uint64) uint64 {
		w := p.wr(0, OpCompareSwap, result, word, 8)
		w.CompareAdd, w.Swap = cmp, swp
		p.post1(t, 0, w)
		wc := p.waitWC(t, 1, 5*time.Second)[0]
		if err := wc.Err(); err != nil || wc.Opcode != WCCompareSwap {
			t.Fatalf("CAS: %+v %v", wc, err)
		}
		return binary.LittleEndian.Uint64(p.mem[0].Bytes()[result:])
	}
	if old := cas(5, 9); old != 5 {
		t.Errorf("successful CAS returned old %d, want 5", old)
	}
	if v := binary.LittleEndian.Uint64(p.mem[1].Bytes()[word:]); v != 9 {
		t.Errorf("after successful CAS word = %d, want 9", v)
	}
	if old := cas(5, 11); old != 9 {
		t.Errorf("failed CAS returned old %d, want 9", old)
	}
	if v := binary.LittleEndian.Uint64(p.mem[1].Bytes()[word:]); v != 9 {
		t.Errorf("after failed CAS word = %d, want 9", v)
	}
	bad := p.wr(0, OpCompareSwap, result+1, word, 8)
	if _, err := p.qp[0].Post([]SendWR{bad}); !errors.Is(err, ErrInvalid) {
		t.Errorf("misaligned CAS = %v, want ErrInvalid", err)
	}
}

func TestBatchPost32(t *testing.T) {
	p := newPair(t, pairOpts{})
	const n, size = 32, 100
	wrs := make([]SendWR, n)
	for i := range wrs {
		src := p.mem[0].Bytes()[i*size : (i+1)*size]
		for j := range src {
			src[j] = byte(i + j)
		}
		wrs[i] = p.wr(0, OpWrite, uint64(i*size), uint64(64<<10+i*size), size)
	}
	posted, err := p.qp[0].Post(wrs)
	if err != nil || posted != n {
		t.Fatalf("Post(32) = %d, %v", posted, err)
	}
	got := p.waitWC(t, n, 10*time.Second)
	for i, wc := range got {
		if wc.Err() != nil || wc.ID != wrs[i].ID {
			t.Fatalf("completion %d: %+v (want ID %d in posting order)", i, wc, wrs[i].ID)
		}
	}
	if !bytes.Equal(p.mem[0].Bytes()[:n*size], p.mem[1].Bytes()[64<<10:64<<10+n*size]) {
		t.Fatal("batched writes: data differs")
	}
}

func TestPostPollDoNotAllocate(t *testing.T) {
	p := newPair(t, pairOpts{})
	wrs := []SendWR{p.wr(0, OpWrite, 0, 0, 64)}
	wcs := make([]WC, 8)
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := p.qp[0].Post(wrs); err != nil {
			t.Fatal(err)
		}
		for {
			n, _ := p.cq.Poll(wcs)
			if n > 0 {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("post+poll allocates %.1f times per op", allocs)
	}
}

func TestPollSpin(t *testing.T) {
	p := newPair(t, pairOpts{})
	if n, err := p.cq.PollSpin(p.wcs, 1000); n != 0 || err != nil {
		t.Fatalf("PollSpin on an empty CQ = %d, %v", n, err)
	}
	w := p.wr(0, OpWrite, 0, 0, 64)
	p.post1(t, 0, w)
	n := 0
	for tries := 0; n == 0 && tries < 100000; tries++ {
		var err error
		if n, err = p.cq.PollSpin(p.wcs, 1000); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 || p.wcs[0].ID != w.ID || p.wcs[0].Err() != nil {
		t.Fatalf("PollSpin = %d, %+v", n, p.wcs[0])
	}
	allocs := testing.AllocsPerRun(20, func() {
		p.post1(t, 0, w)
		for n := 0; n == 0; {
			n, _ = p.cq.PollSpin(p.wcs, 64)
		}
	})
	if allocs != 0 {
		t.Errorf("post+PollSpin allocates %.1f times", allocs)
	}
}
