package verbs

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// windowRig is a target node whose region is registered without remote
// write (remote read and window binding only), reached by two initiators
// through two queue pairs of the target's: qp[1] serves the leader qp[0],
// qp[3] serves a foreign initiator qp[2]. Every queue pair allows remote
// write, so a write stands or falls by its rkey alone.
type windowRig struct {
	ctx        *Context
	pd         *PD
	cq         *CQ
	src, tgt   *Memory
	srcMR      *MR // initiators' local buffers
	tgtMR      *MR // the target's region: LocalWrite|RemoteRead|MWBind
	qp         [4]*QP
	params     [4]ConnParams
	wcs        []WC
	nextID     uint64
	sent       [4]uint32 // packets each queue pair sent since it connected (each request here is one)
	windowOff  uint64
	windowSize uint64
}

func newWindowRig(t testing.TB) *windowRig {
	t.Helper()
	ctx := openDevice(t)
	pa, err := ctx.QueryPort(testPort)
	if err != nil {
		t.Fatal(err)
	}
	gidIndex, gid, err := ctx.FindIPv4GID(testPort)
	if err != nil {
		t.Fatal(err)
	}
	if !ctx.Attr().MemoryWindowsType2() {
		t.Skipf("%s offers no type 2 memory windows (max_mw %d, device_cap_flags %#x)", ctx.Name(), ctx.Attr().MaxMW, ctx.Attr().DeviceCapFlags)
	}
	r := &windowRig{ctx: ctx, wcs: make([]WC, 16), windowOff: 64 << 10, windowSize: 128 << 10}
	t.Logf("%s: max_mw %d, device_cap_flags %#x (MEM_WINDOW %v, TYPE_2A %v, TYPE_2B %v)", ctx.Name(), ctx.Attr().MaxMW,
		ctx.Attr().DeviceCapFlags, ctx.Attr().DeviceCapFlags&CapMemWindow != 0,
		ctx.Attr().DeviceCapFlags&CapMemWindowType2A != 0, ctx.Attr().DeviceCapFlags&CapMemWindowType2B != 0)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	r.pd, err = ctx.AllocPD()
	must(err)
	t.Cleanup(func() { closeOK(t, r.pd) })
	r.cq, err = ctx.CreateCQ(64)
	must(err)
	t.Cleanup(func() { closeOK(t, r.cq) })
	r.src, err = AllocMemory(testRegionBytes)
	must(err)
	t.Cleanup(func() { closeOK(t, r.src) })
	r.tgt, err = AllocMemory(testRegionBytes)
	must(err)
	t.Cleanup(func() { closeOK(t, r.tgt) })
	r.srcMR, err = r.pd.RegisterMemory(r.src, AccessLocalWrite)
	must(err)
	t.Cleanup(func() { closeOK(t, r.srcMR) })
	r.tgtMR, err = r.pd.RegisterMemory(r.tgt, AccessLocalWrite|AccessRemoteRead|AccessMWBind)
	must(err)
	t.Cleanup(func() { closeOK(t, r.tgtMR) })
	for i := range r.qp {
		r.qp[i], err = r.pd.CreateQP(r.cq, QPConfig{MaxSendWR: testSQDepth})
		must(err)
		qp := r.qp[i]
		t.Cleanup(func() { closeOK(t, qp) })
	}
	rd := uint8(min(16, ctx.Attr().MaxQPRdAtom, ctx.Attr().MaxQPInitRdAtom))
	var psn [4]uint32
	for i := range psn {
		psn[i] = rand.Uint32() & maxPSN
	}
	for i := range r.qp {
		peer := i ^ 1
		r.params[i] = ConnParams{
			DGID: gid, DestQPN: r.qp[peer].Num(), RQPSN: psn[peer], SQPSN: psn[i],
			Access: AccessRemoteRead | AccessRemoteWrite,
			Port:   testPort, SGIDIndex: uint8(gidIndex), HopLimit: 64, PathMTU: pa.ActiveMTU,
			Timeout: 14, RetryCount: 7, RNRRetry: 7, MinRNRTimer: 12, MaxRdAtomic: rd, MaxDestRdAtomic: rd,
		}
		must(r.qp[i].Connect(&r.params[i]))
	}
	return r
}

// post1 posts w on qp i and waits for its one completion.
func (r *windowRig) post1(t testing.TB, i int, w SendWR) WC {
	t.Helper()
	r.nextID++
	w.ID, w.Flags = r.nextID, w.Flags|FlagSignaled
	if n, err := r.qp[i].Post([]SendWR{w}); err != nil || n != 1 {
		t.Fatalf("post %v on qp%d: %d, %v", w.Opcode, i, n, err)
	}
	if w.Opcode == OpWrite || w.Opcode == OpRead {
		r.sent[i]++
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := r.cq.Poll(r.wcs[:1])
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			if r.wcs[0].ID != w.ID {
				t.Fatalf("completion %+v, want ID %d", r.wcs[0], w.ID)
			}
			return r.wcs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no completion for %v on qp%d within 10s", w.Opcode, i)
		}
		runtime.Gosched()
	}
}

// write writes n bytes of pattern v from initiator qp i to the target at
// off with rkey.
func (r *windowRig) write(t *testing.T, i int, rkey uint32, off uint64, n uint32, v byte) WC {
	t.Helper()
	fill := r.src.Bytes()[:n]
	for k := range fill {
		fill[k] = v
	}
	return r.post1(t, i, SendWR{Opcode: OpWrite, LocalAddr: r.src.Addr(), LKey: r.srcMR.LKey(),
		RemoteAddr: r.tgt.Addr() + off, RKey: rkey, Length: n})
}

func (r *windowRig) bind(t testing.TB, qp int, mw *MW, rkey uint32) {
	t.Helper()
	w, err := mw.BindWR(0, r.tgtMR, r.windowOff, r.windowSize, AccessRemoteRead|AccessRemoteWrite, rkey, 0)
	if err != nil {
		t.Fatal(err)
	}
	if wc := r.post1(t, qp, w); wc.Status != WCSuccess || wc.Opcode != WCBindMW {
		t.Fatalf("bind on qp%d: %+v (%v)", qp, wc, wc.Status)
	}
}

func (r *windowRig) target(off uint64, n int) []byte { return r.tgt.Bytes()[off : off+uint64(n)] }

func (r *windowRig) state(t *testing.T, i int) QPState {
	t.Helper()
	s, err := r.qp[i].State()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *windowRig) waitState(t *testing.T, i int, want QPState) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.state(t, i) != want {
		if time.Now().After(deadline) {
			t.Fatalf("qp%d is %v after 5s, want %v", i, r.state(t, i), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *windowRig) reconnect(t *testing.T, qps ...int) {
	t.Helper()
	for _, i := range qps {
		if err := r.qp[i].Connect(&r.params[i]); err != nil {
			t.Fatalf("reset qp%d: %v", i, err)
		}
		r.sent[i] = 0
	}
}

func allBytes(b []byte, v byte) bool {
	return !slices.ContainsFunc(b, func(x byte) bool { return x != v })
}

// TestWindowGrantsOneQueuePair is the least-privilege contract a type 2
// window gives mu's permission switch on this device: the region's own
// rkey writes nothing; a window bound to the leader's queue pair opens its
// range to that queue pair only; a foreign queue pair presenting the same
// rkey is refused (and both its ends go to ERROR); after a local
// invalidation the old rkey is refused; the window binds again under a new
// key.
func TestWindowGrantsOneQueuePair(t *testing.T) {
	r := newWindowRig(t)
	mw, err := r.pd.AllocMW()
	if err != nil {
		t.Fatalf("AllocMW(type 2): %v", err)
	}
	t.Cleanup(func() { closeOK(t, mw) }) // before the queue pairs: it holds one
	off := r.windowOff + 4096

	// The registration itself grants no remote write.
	if wc := r.write(t, 2, r.tgtMR.RKey(), off, 64, 0x11); wc.Status != WCRemAccessErr {
		t.Fatalf("write with the region's rkey: %v (%s), want IBV_WC_REM_ACCESS_ERR", wc.Status, wc.Status.Ident())
	}
	if !allBytes(r.target(off, 64), 0) {
		t.Fatal("a refused write changed the target")
	}
	r.waitState(t, 2, QPError)
	r.waitState(t, 3, QPError)
	r.reconnect(t, 2, 3)

	// Grant: bind to the leader's queue pair (the target's end, qp1).
	key1 := mw.NextRKey()
	r.bind(t, 1, mw, key1)
	if mw.RKey() != key1 {
		t.Fatalf("RKey after bind %#x, want %#x", mw.RKey(), key1)
	}
	if wc := r.write(t, 0, key1, off, 64, 0x22); wc.Status != WCSuccess {
		t.Fatalf("leader write through the window: %v (%s)", wc.Status, wc.Status.Ident())
	}
	if !allBytes(r.target(off, 64), 0x22) {
		t.Fatal("leader write through the window did not land")
	}

	// The same rkey from a foreign queue pair of the same protection domain.
	wc := r.write(t, 2, key1, off, 64, 0x33)
	t.Logf("foreign queue pair with the granted rkey: %v (%s, vendor error %#x)", wc.Status, wc.Status.Ident(), wc.VendorErr)
	if wc.Status != WCRemAccessErr {
		t.Fatalf("foreign write with the granted rkey: %v, want IBV_WC_REM_ACCESS_ERR", wc.Status)
	}
	if !allBytes(r.target(off, 64), 0x22) {
		t.Fatal("the foreign write changed the target")
	}
	r.waitState(t, 2, QPError)
	r.waitState(t, 3, QPError)
	if s := r.state(t, 1); s != QPRTS {
		t.Fatalf("the leader's queue pair is %v after the foreign attempt, want RTS", s)
	}
	t.Logf("foreign attempt: initiator qp %v, target qp %v; the grantee's pair stays RTS", r.state(t, 2), r.state(t, 3))

	// The grant still works for the leader.
	if wc := r.write(t, 0, key1, off, 8, 0x44); wc.Status != WCSuccess {
		t.Fatalf("leader write after the foreign attempt: %v", wc.Status)
	}

	// Revoke: local invalidation, posted on the grantee's target queue pair.
	if wc := r.post1(t, 1, InvalidateWR(0, key1, 0)); wc.Status != WCSuccess || wc.Opcode != WCLocalInv {
		t.Fatalf("local invalidate: %+v (%v)", wc, wc.Status)
	}
	if wc := r.write(t, 0, key1, off, 64, 0x55); wc.Status != WCRemAccessErr {
		t.Fatalf("write with the invalidated rkey: %v (%s), want IBV_WC_REM_ACCESS_ERR", wc.Status, wc.Status.Ident())
	}
	if !allBytes(r.target(off, 8), 0x44) || !allBytes(r.target(off+8, 56), 0x22) {
		t.Fatal("a write with the invalidated rkey changed the target")
	}
	r.waitState(t, 0, QPError)
	r.waitState(t, 1, QPError)
	r.reconnect(t, 0, 1)

	// A reset queue pair is not a grant: the window stays invalid.
	if wc := r.write(t, 0, key1, off, 8, 0x66); wc.Status != WCRemAccessErr {
		t.Fatalf("old rkey after the reset: %v, want IBV_WC_REM_ACCESS_ERR", wc.Status)
	}
	r.waitState(t, 1, QPError)
	r.reconnect(t, 0, 1)

	// Rebind under a new key: it writes, the old key does not.
	key2 := mw.NextRKey()
	if key2 == key1 || key2>>8 != key1>>8 {
		t.Fatalf("NextRKey %#x after %#x: want the same window index, a new key byte", key2, key1)
	}
	r.bind(t, 1, mw, key2)
	if wc := r.write(t, 0, key2, off, 64, 0x77); wc.Status != WCSuccess {
		t.Fatalf("write with the new key: %v", wc.Status)
	}
	if !allBytes(r.target(off, 64), 0x77) {
		t.Fatal("write with the new key did not land")
	}
	if wc := r.write(t, 0, key1, off, 64, 0x88); wc.Status != WCRemAccessErr {
		t.Fatalf("write with the previous key after the rebind: %v, want IBV_WC_REM_ACCESS_ERR", wc.Status)
	}
	if !allBytes(r.target(off, 64), 0x77) {
		t.Fatal("the previous key changed the target")
	}
	r.waitState(t, 1, QPError)
	r.reconnect(t, 0, 1)

	// Bounds: a write with the live key just outside the window, inside
	// the registration. rxe checks the registration's bounds for a window
	// key, not the window's (recorded, not required: confine a window by
	// registering exactly what it may cover).
	if wc := r.write(t, 0, key2, r.windowOff+r.windowSize, 64, 0x99); wc.Status == WCSuccess {
		t.Logf("write just past the window with its key: landed (%v): this device enforces the registration's bounds only", allBytes(r.target(r.windowOff+r.windowSize, 64), 0x99))
	} else {
		t.Logf("write just past the window with its key: %v (%s): window bounds enforced", wc.Status, wc.Status.Ident())
	}
}

// TestWindowInvalidateOnErroredQueuePair: a revocation cannot count on the
// grantee's queue pair, which a refused write may have put in ERROR, where
// a posted invalidation only flushes. Deallocating the window revokes
// whatever the queue pair's state; a fresh window then binds after a reset.
func TestWindowInvalidateOnErroredQueuePair(t *testing.T) {
	r := newWindowRig(t)
	mw, err := r.pd.AllocMW()
	if err != nil {
		t.Fatalf("AllocMW(type 2): %v", err)
	}
	t.Cleanup(func() { closeOK(t, mw) }) // a no-op once closed below
	key := mw.NextRKey()
	r.bind(t, 1, mw, key)
	if err := r.qp[1].ToError(); err != nil {
		t.Fatal(err)
	}
	if wc := r.post1(t, 1, InvalidateWR(0, key, 0)); wc.Status != WCWRFlushErr {
		t.Fatalf("invalidate on an ERROR queue pair: %v, want flushed", wc.Status)
	}
	start := time.Now()
	closeOK(t, mw)
	t.Logf("dealloc of a bound window took %v", time.Since(start))
	r.reconnect(t, 0, 1)
	if wc := r.write(t, 0, key, r.windowOff, 8, 0x12); wc.Status != WCRemAccessErr {
		t.Fatalf("write with a deallocated window's key after the reset: %v, want IBV_WC_REM_ACCESS_ERR", wc.Status)
	}
	r.waitState(t, 1, QPError)
	r.reconnect(t, 0, 1)
	mw2, err := r.pd.AllocMW()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, mw2) })
	key2 := mw2.NextRKey()
	r.bind(t, 1, mw2, key2)
	if wc := r.write(t, 0, key2, r.windowOff, 8, 0x13); wc.Status != WCSuccess {
		t.Fatalf("write through a fresh window: %v", wc.Status)
	}
}

// inject writes n bytes of v into the target at off with rkey from a queue
// pair the target never connected to, aimed at the target's end of the
// leader's connection (qp1) from the leader's address with the packet
// sequence number qp1 expects next: what an on-path attacker who read the
// QPN, PSN and rkey off the wire can send, since RoCE v2 authenticates
// nothing. It returns the attacker's completion status (its request never
// gets a proper answer: the target acknowledges the queue pair it is
// connected to) and whether the bytes landed.
func (r *windowRig) inject(t *testing.T, rkey uint32, off uint64, n uint32, v byte) (WCStatus, bool) {
	t.Helper()
	qp, err := r.pd.CreateQP(r.cq, QPConfig{MaxSendWR: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, qp)
	p := r.params[0]
	p.SQPSN = (r.params[0].SQPSN + r.sent[0]) & maxPSN
	p.Timeout, p.RetryCount = 8, 1 // ~2 ms per try: give up fast
	if err := qp.Connect(&p); err != nil {
		t.Fatal(err)
	}
	fill := r.src.Bytes()[:n]
	for k := range fill {
		fill[k] = v
	}
	r.nextID++
	if _, err := qp.Post([]SendWR{{ID: r.nextID, Opcode: OpWrite, Flags: FlagSignaled, LocalAddr: r.src.Addr(), LKey: r.srcMR.LKey(),
		RemoteAddr: r.tgt.Addr() + off, RKey: rkey, Length: n}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		k, err := r.cq.Poll(r.wcs[:1])
		if err != nil {
			t.Fatal(err)
		}
		if k == 1 && r.wcs[0].ID == r.nextID {
			return r.wcs[0].Status, allBytes(r.target(off, int(n)), v)
		}
		if k == 1 {
			t.Logf("stray completion during the injection: %+v", r.wcs[0])
		}
		if time.Now().After(deadline) {
			t.Fatal("the injected request never completed")
		}
		runtime.Gosched()
	}
}

// TestWindowInjectedPacketOnGranteeQueuePair records what a window does
// against spoofed packets. With a stale key (before any bind, or after an
// invalidation) the injected write is refused, and the refusal puts the
// target's end of the leader's connection in ERROR: a denial of service
// until both ends are reset. With the live key the window check passes,
// since the packet arrives on the very queue pair the window is bound to.
func TestWindowInjectedPacketOnGranteeQueuePair(t *testing.T) {
	r := newWindowRig(t)
	mw, err := r.pd.AllocMW()
	if err != nil {
		t.Fatalf("AllocMW(type 2): %v", err)
	}
	t.Cleanup(func() { closeOK(t, mw) })
	off := r.windowOff + 8192
	stale := mw.NextRKey()
	r.bind(t, 1, mw, stale)
	if wc := r.post1(t, 1, InvalidateWR(0, stale, 0)); wc.Status != WCSuccess {
		t.Fatalf("invalidate: %v", wc.Status)
	}
	st, landed := r.inject(t, stale, off, 64, 0x5A)
	t.Logf("injected write with an invalidated key: attacker sees %v; landed %v; leader's end %v, target's end %v", st, landed, r.state(t, 0), r.state(t, 1))
	if landed {
		t.Fatal("an injected write with an invalidated key landed")
	}
	r.waitState(t, 1, QPError)
	start := time.Now()
	r.reconnect(t, 0, 1)
	t.Logf("both ends reset in %v", time.Since(start))

	live := mw.NextRKey()
	r.bind(t, 1, mw, live)
	if wc := r.write(t, 0, live, off, 8, 0x61); wc.Status != WCSuccess {
		t.Fatalf("leader write with the live key: %v", wc.Status)
	}
	st, landed = r.inject(t, live, off, 64, 0x6B)
	t.Logf("injected write with the live key on the grantee's queue pair: attacker sees %v; landed %v; leader's end %v, target's end %v", st, landed, r.state(t, 0), r.state(t, 1))
	wc := r.write(t, 0, live, off+64, 8, 0x7C)
	t.Logf("the leader's next write after the injection: %v; landed %v", wc.Status, allBytes(r.target(off+64, 8), 0x7C))
}
