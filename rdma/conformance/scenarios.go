package conformance

import (
	"encoding/binary"
	"errors"

	"github.com/rdmaconsensus/mu/rdma"
)

// waitLimitNs bounds every wait for an operation that should succeed.
const waitLimitNs = 2_000_000_000

// reader drains one fabric's completion queue into got. A scenario uses one
// reader per fabric, since Poll returns completions of every connection.
type reader struct {
	f   rdma.Fabric
	got []rdma.Completion
	at  []int64 // fabric clock when each completion was first seen
	buf [64]rdma.Completion
}

func newReader(f rdma.Fabric) *reader { return &reader{f: f} }

func (r *reader) poll() {
	n := r.f.Poll(r.buf[:])
	if n == 0 {
		return
	}
	now := r.f.Now()
	for _, c := range r.buf[:n] {
		r.got = append(r.got, c)
		r.at = append(r.at, now)
	}
}

// wait polls until at least n completions have arrived in total.
func (r *reader) wait(t T, c Cluster, n int, limitNs int64) []rdma.Completion {
	t.Helper()
	if !c.WaitUntil(func() bool { r.poll(); return len(r.got) >= n }, limitNs) {
		t.Fatalf("node %d: %d completions after %d ns, want %d: %+v", r.f.Self(), len(r.got), limitNs, n, r.got)
	}
	return r.got
}

func post(t T, conn rdma.Conn, wrs ...rdma.WorkRequest) {
	t.Helper()
	n, err := conn.Post(wrs)
	if err != nil || n != len(wrs) {
		t.Fatalf("post on %d/%v: posted %d of %d: %v", conn.Peer(), conn.Plane(), n, len(wrs), err)
	}
}

func conn(t T, f rdma.Fabric, peer rdma.NodeID, p rdma.Plane) rdma.Conn {
	t.Helper()
	c := f.Conn(peer, p)
	if c == nil {
		t.Fatalf("node %d has no %v connection to %d", f.Self(), p, peer)
	}
	if c.Peer() != peer || c.Plane() != p {
		t.Fatalf("node %d: Conn(%d, %v) reports peer %d plane %v", f.Self(), peer, p, c.Peer(), c.Plane())
	}
	return c
}

func checkCompletion(t T, c rdma.Completion, id uint64, op rdma.Op, st rdma.Status, peer rdma.NodeID, p rdma.Plane) {
	t.Helper()
	if c.ID != id || c.Op != op || c.Status != st || c.Peer != peer || c.Plane != p {
		t.Fatalf("completion %+v, want id %d %v %v from %d on %v", c, id, op, st, peer, p)
	}
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

func allEqual(b []byte, v byte) bool {
	for _, x := range b {
		if x != v {
			return false
		}
	}
	return true
}

// visibilityAndOrdering: on one connection, writes land in posting order and
// each one's data is visible at the target when its completion arrives.
func visibilityAndOrdering(t T, c Cluster) {
	const writes = 32
	f1, f2 := c.Fabric(1), c.Fabric(2)
	local, remote := f1.Region().Bytes(), f2.Region().Bytes()
	var wrs []rdma.WorkRequest
	for k := 1; k <= writes; k++ {
		slot := local[4096+k*64 : 4096+k*64+64]
		fill(slot, byte(k))
		binary.LittleEndian.PutUint64(local[1024+k*8:], uint64(k))
		// A 64-byte slot, then the counter word that announces it.
		wrs = append(wrs,
			rdma.WorkRequest{ID: uint64(2 * k), Op: rdma.OpWrite, LocalOffset: uint64(4096 + k*64), RemoteOffset: uint64(8192 + k*64), Length: 64},
			rdma.WorkRequest{ID: uint64(2*k + 1), Op: rdma.OpWrite, LocalOffset: uint64(1024 + k*8), RemoteOffset: 0, Length: 8})
	}
	r := newReader(f1)
	cn := conn(t, f1, 2, rdma.PlaneReplication)
	post(t, cn, wrs...)
	// The counter only grows (values < 256 change one byte, so a sample is
	// never torn); whenever it reads k, slots 1..k are complete.
	last := uint64(0)
	checked := 0
	ok := c.WaitUntil(func() bool {
		v := binary.LittleEndian.Uint64(remote[0:8])
		if v < last {
			t.Fatalf("target counter went back from %d to %d", last, v)
		}
		for k := last + 1; k <= v; k++ {
			if !allEqual(remote[8192+k*64:8192+k*64+64], byte(k)) {
				t.Fatalf("counter reads %d but slot %d is not complete: writes landed out of order", v, k)
			}
		}
		last = v
		r.poll()
		for ; checked < len(r.got); checked++ {
			cq := r.got[checked]
			want := uint64(checked + 2)
			checkCompletion(t, cq, want, rdma.OpWrite, rdma.StatusSuccess, 2, rdma.PlaneReplication)
			k := int(want / 2)
			if !allEqual(remote[8192+k*64:8192+k*64+64], byte(k)) {
				t.Fatalf("completion %d arrived before its slot %d was visible at the target", want, k)
			}
			if want%2 == 1 && binary.LittleEndian.Uint64(remote[0:8]) < uint64(k) {
				t.Fatalf("completion for counter %d arrived before the target saw it", k)
			}
		}
		return checked == 2*writes
	}, waitLimitNs)
	if !ok {
		t.Fatalf("%d of %d completions", checked, 2*writes)
	}
	if v := binary.LittleEndian.Uint64(remote[0:8]); v != writes {
		t.Fatalf("final counter %d, want %d", v, writes)
	}
}

// readSeesRemoteData: a read's data is in the local region when its
// completion arrives, on both planes.
func readSeesRemoteData(t T, c Cluster) {
	f1 := c.Fabric(1)
	fill(c.Fabric(2).Region().Bytes()[0:4096], 0xA2)
	fill(c.Fabric(3).Region().Bytes()[4096:8192], 0xA3)
	r := newReader(f1)
	post(t, conn(t, f1, 2, rdma.PlaneBackground), rdma.WorkRequest{ID: 1, Op: rdma.OpRead, LocalOffset: 8192, RemoteOffset: 0, Length: 4096})
	post(t, conn(t, f1, 3, rdma.PlaneReplication), rdma.WorkRequest{ID: 2, Op: rdma.OpRead, LocalOffset: 16384, RemoteOffset: 4096, Length: 4096})
	local := f1.Region().Bytes()
	seen := 0
	c.WaitUntil(func() bool {
		r.poll()
		for ; seen < len(r.got); seen++ {
			cq := r.got[seen]
			switch cq.ID {
			case 1:
				checkCompletion(t, cq, 1, rdma.OpRead, rdma.StatusSuccess, 2, rdma.PlaneBackground)
				if !allEqual(local[8192:12288], 0xA2) {
					t.Fatal("read from 2 completed before its data was in the local region")
				}
			case 2:
				checkCompletion(t, cq, 2, rdma.OpRead, rdma.StatusSuccess, 3, rdma.PlaneReplication)
				if !allEqual(local[16384:20480], 0xA3) {
					t.Fatal("read from 3 completed before its data was in the local region")
				}
			default:
				t.Fatalf("unexpected completion %+v", cq)
			}
		}
		return seen == 2
	}, waitLimitNs)
	if seen != 2 {
		t.Fatalf("%d of 2 read completions", seen)
	}
}

// breakByRevoke revokes 2's remote-write flag towards 1 on the replication
// plane and has 1 write through it: the write must fail with remote invalid
// request, leave the target untouched, and put both ends in ERROR.
func breakByRevoke(t T, c Cluster, r *reader) (e12, e21 rdma.Conn) {
	t.Helper()
	f1, f2 := c.Fabric(1), c.Fabric(2)
	e12, e21 = conn(t, f1, 2, rdma.PlaneReplication), conn(t, f2, 1, rdma.PlaneReplication)
	if err := e21.SetRemoteAccess(rdma.AccessRemoteRead); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if a := e21.RemoteAccess(); a != rdma.AccessRemoteRead {
		t.Fatalf("RemoteAccess after revoke = %v, want read only", a)
	}
	fill(f1.Region().Bytes()[0:64], 0x5A)
	post(t, e12, rdma.WorkRequest{ID: 100, Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: 512, Length: 64})
	got := r.wait(t, c, len(r.got)+1, waitLimitNs)
	cq := got[len(got)-1]
	checkCompletion(t, cq, 100, rdma.OpWrite, rdma.StatusRemoteInvalidRequest, 2, rdma.PlaneReplication)
	if !errors.Is(cq.Status.Err(), rdma.ErrRemoteInvalidRequest) {
		t.Fatalf("status error %v does not match ErrRemoteInvalidRequest", cq.Status.Err())
	}
	if !allEqual(f2.Region().Bytes()[512:576], 0) {
		t.Fatal("a refused write changed the target's region")
	}
	if !c.WaitUntil(func() bool { return e12.State() == rdma.ConnError && e21.State() == rdma.ConnError }, waitLimitNs) {
		t.Fatalf("after the refused write: writer end %v, target end %v, want both %v", e12.State(), e21.State(), rdma.ConnError)
	}
	return e12, e21
}

// revokeResetBothEnds: revoke -> remote invalid request at the writer, both
// ends in error -> reset both -> writes succeed again.
func revokeResetBothEnds(t T, c Cluster) {
	r := newReader(c.Fabric(1))
	e12, e21 := breakByRevoke(t, c, r)
	if err := e12.Reset(rdma.AccessAll); err != nil {
		t.Fatalf("reset writer end: %v", err)
	}
	if err := e21.Reset(rdma.AccessAll); err != nil {
		t.Fatalf("reset target end: %v", err)
	}
	if e12.State() != rdma.ConnReady || e21.State() != rdma.ConnReady {
		t.Fatalf("after reset: %v %v, want ready", e12.State(), e21.State())
	}
	if e21.RemoteAccess() != rdma.AccessAll {
		t.Fatalf("access after reset %v, want all", e21.RemoteAccess())
	}
	// Drain anything the reset flushed before checking the new write.
	c.WaitUntil(func() bool { r.poll(); return false }, 1_000_000)
	n0 := len(r.got)
	fill(c.Fabric(1).Region().Bytes()[0:64], 0x6B)
	post(t, e12, rdma.WorkRequest{ID: 101, Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: 512, Length: 64})
	got := r.wait(t, c, n0+1, waitLimitNs)
	checkCompletion(t, got[n0], 101, rdma.OpWrite, rdma.StatusSuccess, 2, rdma.PlaneReplication)
	if !allEqual(c.Fabric(2).Region().Bytes()[512:576], 0x6B) {
		t.Fatal("write after reset not visible at the target")
	}
	// The other direction works too.
	r2 := newReader(c.Fabric(2))
	post(t, e21, rdma.WorkRequest{ID: 102, Op: rdma.OpRead, LocalOffset: 1024, RemoteOffset: 0, Length: 64})
	got = r2.wait(t, c, 1, waitLimitNs)
	checkCompletion(t, got[len(got)-1], 102, rdma.OpRead, rdma.StatusSuccess, 1, rdma.PlaneReplication)
}

// resetOneEndNotEnough: after a refused write, resetting only the writer's
// end does not make the connection work: the target's end is still in
// ERROR, so the next write does not land and does not succeed.
func resetOneEndNotEnough(t T, c Cluster) {
	r := newReader(c.Fabric(1))
	e12, e21 := breakByRevoke(t, c, r)
	if err := e12.Reset(rdma.AccessAll); err != nil {
		t.Fatalf("reset writer end: %v", err)
	}
	c.WaitUntil(func() bool { r.poll(); return false }, 1_000_000)
	n0 := len(r.got)
	fill(c.Fabric(1).Region().Bytes()[0:64], 0x3C)
	post(t, e12, rdma.WorkRequest{ID: 150, Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: 512, Length: 64})
	got := r.wait(t, c, n0+1, 4*c.RetryExceededAfterNs()+waitLimitNs)
	if cq := got[n0]; cq.ID != 150 || cq.Status == rdma.StatusSuccess {
		t.Fatalf("write with only the writer's end reset: %+v, want a failure", cq)
	}
	if !allEqual(c.Fabric(2).Region().Bytes()[512:576], 0) {
		t.Fatal("a write reached a target end that is still in error")
	}
	if e21.State() != rdma.ConnError {
		t.Fatalf("target end %v, want still in error", e21.State())
	}
}

// flushedOnErroredConn: everything posted on an end in ERROR completes with
// flushed, in order, and does nothing at the target.
func flushedOnErroredConn(t T, c Cluster) {
	r1 := newReader(c.Fabric(1))
	e12, e21 := breakByRevoke(t, c, r1)
	c.WaitUntil(func() bool { r1.poll(); return false }, 1_000_000)
	n0 := len(r1.got)
	fill(c.Fabric(1).Region().Bytes()[0:64], 0x77)
	var wrs []rdma.WorkRequest
	for i := range 4 {
		wrs = append(wrs, rdma.WorkRequest{ID: uint64(200 + i), Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: uint64(1024 + 64*i), Length: 64})
	}
	post(t, e12, wrs...)
	got := r1.wait(t, c, n0+4, waitLimitNs)
	for i := range 4 {
		checkCompletion(t, got[n0+i], uint64(200+i), rdma.OpWrite, rdma.StatusFlushed, 2, rdma.PlaneReplication)
		if !errors.Is(got[n0+i].Status.Err(), rdma.ErrFlushed) {
			t.Fatalf("flushed status does not match ErrFlushed")
		}
	}
	if !allEqual(c.Fabric(2).Region().Bytes()[1024:1024+256], 0) {
		t.Fatal("a flushed write reached the target")
	}
	// The target's end is in error too: its posts flush as well.
	r2 := newReader(c.Fabric(2))
	c.WaitUntil(func() bool { r2.poll(); return false }, 1_000_000)
	m0 := len(r2.got)
	post(t, e21, rdma.WorkRequest{ID: 300, Op: rdma.OpRead, LocalOffset: 0, RemoteOffset: 0, Length: 8})
	got = r2.wait(t, c, m0+1, waitLimitNs)
	checkCompletion(t, got[m0], 300, rdma.OpRead, rdma.StatusFlushed, 1, rdma.PlaneReplication)
}

// deadPeerRetryExceeded: requests to a dead peer complete with retry
// exceeded, not before the transport timeout; other peers are unaffected.
func deadPeerRetryExceeded(t T, c Cluster) {
	if err := c.Kill(2); err != nil {
		if errors.Is(err, rdma.ErrNotSupported) {
			t.Skipf("backend cannot kill a node: %v", err)
		}
		t.Fatalf("kill: %v", err)
	}
	f1 := c.Fabric(1)
	r := newReader(f1)
	bound := c.RetryExceededAfterNs()
	start := f1.Now()
	post(t, conn(t, f1, 2, rdma.PlaneBackground), rdma.WorkRequest{ID: 1, Op: rdma.OpRead, LocalOffset: 0, RemoteOffset: 0, Length: 8})
	post(t, conn(t, f1, 2, rdma.PlaneReplication), rdma.WorkRequest{ID: 2, Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: 0, Length: 8})
	// Node 3 still answers.
	post(t, conn(t, f1, 3, rdma.PlaneReplication), rdma.WorkRequest{ID: 3, Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: 0, Length: 8})
	got := r.wait(t, c, 3, 4*bound+waitLimitNs)
	seen := map[uint64]bool{}
	for i, cq := range got {
		seen[cq.ID] = true
		if cq.Peer == 3 {
			checkCompletion(t, cq, 3, rdma.OpWrite, rdma.StatusSuccess, 3, rdma.PlaneReplication)
			continue
		}
		if el := r.at[i] - start; el < bound {
			t.Fatalf("completion %+v from the dead peer after %d ns, before the transport timeout %d ns", cq, el, bound)
		}
		if cq.Status != rdma.StatusRetryExceeded || !errors.Is(cq.Status.Err(), rdma.ErrRetryExceeded) || cq.Peer != 2 {
			t.Fatalf("completion %+v from a dead peer, want retry exceeded", cq)
		}
	}
	if !seen[1] || !seen[2] || !seen[3] {
		t.Fatalf("completions %+v, want ids 1, 2 and 3 once each", got)
	}
	if s := f1.Conn(2, rdma.PlaneBackground).State(); s != rdma.ConnError {
		t.Fatalf("connection to the dead peer is %v after retry exceeded, want error", s)
	}
}

// compareSwap: success returns the old value and swaps; failure returns the
// current value and leaves it; racing swaps have exactly one winner.
func compareSwap(t T, c Cluster) {
	f1, f2, f3 := c.Fabric(1), c.Fabric(2), c.Fabric(3)
	le := binary.LittleEndian
	remote := f2.Region().Bytes()
	r1, r3 := newReader(f1), newReader(f3)
	e12 := conn(t, f1, 2, rdma.PlaneBackground)
	const v1 = 0x1122334455667788

	post(t, e12, rdma.WorkRequest{ID: 1, Op: rdma.OpCompareSwap, LocalOffset: 128, RemoteOffset: 64, Length: 8, Compare: 0, Swap: v1})
	checkCompletion(t, r1.wait(t, c, 1, waitLimitNs)[0], 1, rdma.OpCompareSwap, rdma.StatusSuccess, 2, rdma.PlaneBackground)
	if got := le.Uint64(f1.Region().Bytes()[128:]); got != 0 {
		t.Fatalf("successful swap returned %#x, want the old 0", got)
	}
	if got := le.Uint64(remote[64:]); got != v1 {
		t.Fatalf("target word %#x after swap, want %#x", got, v1)
	}

	post(t, e12, rdma.WorkRequest{ID: 2, Op: rdma.OpCompareSwap, LocalOffset: 136, RemoteOffset: 64, Length: 8, Compare: 0, Swap: 9})
	checkCompletion(t, r1.wait(t, c, 2, waitLimitNs)[1], 2, rdma.OpCompareSwap, rdma.StatusSuccess, 2, rdma.PlaneBackground)
	if got := le.Uint64(f1.Region().Bytes()[136:]); got != v1 {
		t.Fatalf("failed swap returned %#x, want the current %#x", got, v1)
	}
	if got := le.Uint64(remote[64:]); got != v1 {
		t.Fatalf("failed swap changed the target to %#x", got)
	}

	// Nodes 1 and 3 race to swap the same word from v1.
	post(t, e12, rdma.WorkRequest{ID: 3, Op: rdma.OpCompareSwap, LocalOffset: 144, RemoteOffset: 64, Length: 8, Compare: v1, Swap: 101})
	post(t, conn(t, f3, 2, rdma.PlaneBackground), rdma.WorkRequest{ID: 4, Op: rdma.OpCompareSwap, LocalOffset: 144, RemoteOffset: 64, Length: 8, Compare: v1, Swap: 103})
	r1.wait(t, c, 3, waitLimitNs)
	r3.wait(t, c, 1, waitLimitNs)
	if r1.got[2].Status != rdma.StatusSuccess || r3.got[0].Status != rdma.StatusSuccess {
		t.Fatalf("racing swaps: %+v %+v", r1.got[2], r3.got[0])
	}
	old1, old3 := le.Uint64(f1.Region().Bytes()[144:]), le.Uint64(f3.Region().Bytes()[144:])
	final := le.Uint64(remote[64:])
	switch {
	case old1 == v1 && old3 == 101 && final == 101:
	case old3 == v1 && old1 == 103 && final == 103:
	default:
		t.Fatalf("racing swaps not atomic: node 1 saw %#x, node 3 saw %#x, final %#x", old1, old3, final)
	}
}

// concurrentDisjointWriters: every node writes to every other node at once,
// each into its own area; all succeed and nothing overlaps.
func concurrentDisjointWriters(t T, c Cluster) {
	const nodes, writes, size = 3, 16, 64
	area := func(writer rdma.NodeID, k int) uint64 { return uint64(int(writer)*4096 + k*size) }
	pattern := func(writer rdma.NodeID, k int) byte { return byte(int(writer)*writes + k + 1) }
	readers := make([]*reader, nodes+1)
	for i := rdma.NodeID(1); i <= nodes; i++ {
		f := c.Fabric(i)
		readers[i] = newReader(f)
		for k := range writes {
			fill(f.Region().Bytes()[32768+k*size:32768+(k+1)*size], pattern(i, k))
		}
	}
	for i := rdma.NodeID(1); i <= nodes; i++ {
		for j := rdma.NodeID(1); j <= nodes; j++ {
			if i == j {
				continue
			}
			var wrs []rdma.WorkRequest
			for k := range writes {
				wrs = append(wrs, rdma.WorkRequest{ID: uint64(j)<<32 | uint64(k), Op: rdma.OpWrite, LocalOffset: uint64(32768 + k*size), RemoteOffset: area(i, k), Length: size})
			}
			post(t, conn(t, c.Fabric(i), j, rdma.PlaneReplication), wrs...)
		}
	}
	want := (nodes - 1) * writes
	ok := c.WaitUntil(func() bool {
		done := true
		for i := rdma.NodeID(1); i <= nodes; i++ {
			readers[i].poll()
			done = done && len(readers[i].got) >= want
		}
		return done
	}, waitLimitNs)
	if !ok {
		t.Fatal("not every write completed")
	}
	for i := rdma.NodeID(1); i <= nodes; i++ {
		for _, cq := range readers[i].got {
			if cq.Status != rdma.StatusSuccess || rdma.NodeID(cq.ID>>32) != cq.Peer {
				t.Fatalf("node %d: completion %+v", i, cq)
			}
		}
		for j := rdma.NodeID(1); j <= nodes; j++ {
			if i == j {
				continue
			}
			b := c.Fabric(j).Region().Bytes()
			for k := range writes {
				a := area(i, k)
				if !allEqual(b[a:a+size], pattern(i, k)) {
					t.Fatalf("node %d's write %d into node %d is wrong", i, k, j)
				}
			}
		}
	}
}

// batch32: one Post of 32 requests; all signaled -> 32 completions in order;
// only the last signaled -> exactly one completion, after which all 32 are
// visible.
func batch32(t T, c Cluster) {
	const batch = 32
	f1, f2 := c.Fabric(1), c.Fabric(2)
	r := newReader(f1)
	cn := conn(t, f1, 2, rdma.PlaneReplication)
	local, remote := f1.Region().Bytes(), f2.Region().Bytes()
	for round, unsignaled := range []bool{false, true} {
		base := round * batch * 64
		var wrs []rdma.WorkRequest
		for k := range batch {
			fill(local[base+k*64:base+k*64+64], byte(1+round*batch+k))
			wrs = append(wrs, rdma.WorkRequest{
				ID: uint64(round*batch + k), Op: rdma.OpWrite,
				LocalOffset: uint64(base + k*64), RemoteOffset: uint64(base + k*64), Length: 64,
				Unsignaled: unsignaled && k != batch-1,
			})
		}
		n0 := len(r.got)
		n, err := cn.Post(wrs)
		if err != nil || n != batch {
			t.Fatalf("batched post: %d of %d: %v", n, batch, err)
		}
		expect := batch
		if unsignaled {
			expect = 1
		}
		got := r.wait(t, c, n0+expect, waitLimitNs)
		for i := range expect {
			id := uint64(round*batch + i)
			if unsignaled {
				id = uint64(round*batch + batch - 1)
			}
			checkCompletion(t, got[n0+i], id, rdma.OpWrite, rdma.StatusSuccess, 2, rdma.PlaneReplication)
		}
		for k := range batch {
			if !allEqual(remote[base+k*64:base+k*64+64], byte(1+round*batch+k)) {
				t.Fatalf("round %d: write %d not visible after the last completion", round, k)
			}
		}
		// No stray completions for unsignaled successes.
		c.WaitUntil(func() bool { r.poll(); return false }, 1_000_000)
		if len(r.got) != n0+expect {
			t.Fatalf("round %d: %d completions, want %d: %+v", round, len(r.got)-n0, expect, r.got[n0:])
		}
	}
}

// backgroundUnaffected: revoking (and breaking) the replication plane leaves
// the background plane between the same nodes working.
func backgroundUnaffected(t T, c Cluster) {
	r := newReader(c.Fabric(1))
	breakByRevoke(t, c, r)
	c.WaitUntil(func() bool { r.poll(); return false }, 1_000_000)
	n0 := len(r.got)
	binary.LittleEndian.PutUint64(c.Fabric(2).Region().Bytes()[2048:], 77)
	bg := conn(t, c.Fabric(1), 2, rdma.PlaneBackground)
	if bg.State() != rdma.ConnReady {
		t.Fatalf("background plane %v after the replication plane broke", bg.State())
	}
	post(t, bg, rdma.WorkRequest{ID: 400, Op: rdma.OpRead, LocalOffset: 2048, RemoteOffset: 2048, Length: 8})
	got := r.wait(t, c, n0+1, waitLimitNs)
	checkCompletion(t, got[n0], 400, rdma.OpRead, rdma.StatusSuccess, 2, rdma.PlaneBackground)
	if v := binary.LittleEndian.Uint64(c.Fabric(1).Region().Bytes()[2048:]); v != 77 {
		t.Fatalf("background read returned %d", v)
	}
}

func reconnector(t T, c Cluster) Reconnector {
	t.Helper()
	r, ok := c.(Reconnector)
	if !ok {
		t.Skipf("backend cannot redo a handshake")
	}
	return r
}

// reconnectCompletesOnce: requests in flight when the handshake between 1
// and 2 is redone each complete once, successfully or flushed; the
// connections are the same values, ready, and carry writes after it, and
// the other peers never noticed.
func reconnectCompletesOnce(t T, c Cluster) {
	rc := reconnector(t, c)
	f1, f2 := c.Fabric(1), c.Fabric(2)
	var before [rdma.NumPlanes]rdma.Conn
	for p := range rdma.NumPlanes {
		before[p] = conn(t, f1, 2, p)
	}
	r := newReader(f1)
	const n = 16
	fill(f1.Region().Bytes()[0:64], 0x21)
	var wrs []rdma.WorkRequest
	for i := range n {
		wrs = append(wrs, rdma.WorkRequest{ID: uint64(400 + i), Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: uint64(2048 + 64*i), Length: 64})
	}
	post(t, before[rdma.PlaneReplication], wrs...)
	post(t, before[rdma.PlaneBackground], rdma.WorkRequest{ID: 450, Op: rdma.OpRead, LocalOffset: 4096, RemoteOffset: 0, Length: 8})
	post(t, conn(t, f1, 3, rdma.PlaneReplication), rdma.WorkRequest{ID: 460, Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: 0, Length: 64})
	if err := rc.Reconnect(1, 2); err != nil {
		t.Fatalf("reconnect 1-2: %v", err)
	}
	r.wait(t, c, n+2, waitLimitNs)
	c.WaitUntil(func() bool { r.poll(); return false }, 10_000_000) // anything extra would show now
	seen := map[uint64]int{}
	for _, cq := range r.got {
		seen[cq.ID]++
		switch {
		case cq.ID == 460:
			checkCompletion(t, cq, 460, rdma.OpWrite, rdma.StatusSuccess, 3, rdma.PlaneReplication)
		case cq.Status != rdma.StatusSuccess && cq.Status != rdma.StatusFlushed:
			t.Fatalf("request in flight across the reconnect: %+v, want success or flushed", cq)
		case cq.Peer != 2:
			t.Fatalf("completion %+v names the wrong peer", cq)
		}
	}
	for id := uint64(400); id < 400+n; id++ {
		if seen[id] != 1 {
			t.Fatalf("write %d completed %d times across the reconnect: %+v", id, seen[id], r.got)
		}
	}
	if seen[450] != 1 || seen[460] != 1 || len(r.got) != n+2 {
		t.Fatalf("completions across the reconnect: %+v", r.got)
	}
	for p := range rdma.NumPlanes {
		if got := f1.Conn(2, p); got != before[p] {
			t.Fatalf("Conn(2, %v) changed across the reconnect", p)
		}
		if s := before[p].State(); s != rdma.ConnReady {
			t.Fatalf("%v connection after the reconnect: %v, want ready", p, s)
		}
		if a := conn(t, f2, 1, p).RemoteAccess(); a != rdma.AccessAll {
			t.Fatalf("node 2's %v end grants %v after the reconnect, want all", p, a)
		}
	}
	n0 := len(r.got)
	fill(f1.Region().Bytes()[0:64], 0x42)
	post(t, before[rdma.PlaneReplication], rdma.WorkRequest{ID: 470, Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: 512, Length: 64})
	got := r.wait(t, c, n0+1, waitLimitNs)
	checkCompletion(t, got[n0], 470, rdma.OpWrite, rdma.StatusSuccess, 2, rdma.PlaneReplication)
	if !allEqual(f2.Region().Bytes()[512:576], 0x42) {
		t.Fatal("write after the reconnect not visible at the target")
	}
}

// reconnectRevives: a connection broken by a refused write (both ends in
// error) works again after a new handshake, without Reset.
func reconnectRevives(t T, c Cluster) {
	rc := reconnector(t, c)
	r := newReader(c.Fabric(1))
	e12, e21 := breakByRevoke(t, c, r)
	if err := rc.Reconnect(1, 2); err != nil {
		t.Fatalf("reconnect 1-2: %v", err)
	}
	if e12.State() != rdma.ConnReady || e21.State() != rdma.ConnReady {
		t.Fatalf("after the reconnect: %v %v, want ready", e12.State(), e21.State())
	}
	c.WaitUntil(func() bool { r.poll(); return false }, 1_000_000)
	n0 := len(r.got)
	fill(c.Fabric(1).Region().Bytes()[0:64], 0x6C)
	post(t, e12, rdma.WorkRequest{ID: 480, Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: 512, Length: 64})
	got := r.wait(t, c, n0+1, waitLimitNs)
	checkCompletion(t, got[n0], 480, rdma.OpWrite, rdma.StatusSuccess, 2, rdma.PlaneReplication)
	if !allEqual(c.Fabric(2).Region().Bytes()[512:576], 0x6C) {
		t.Fatal("write after the reconnect not visible at the target")
	}
}
