package conformance

import (
	"github.com/rdmaconsensus/mu/rdma"
)

// grantIsPerConnection: a write grant belongs to one connection, as a
// memory window bound to one queue pair does and as the access flags of one
// queue pair do on rxe. Node 2 grants node 1 and not node 3: 1's write
// lands; 3's write to the same bytes is refused with remote invalid
// request, changes nothing and breaks only 3's connection (both ends), not
// the grantee's. Once 2 revokes the grant, 1's next write is refused the
// same way; resetting both ends to read-only (what the permission
// manager's repair does) does not bring the grant back.
func grantIsPerConnection(t T, c Cluster) {
	f1, f2, f3 := c.Fabric(1), c.Fabric(2), c.Fabric(3)
	r1, r3 := newReader(f1), newReader(f3)
	e12, e21 := conn(t, f1, 2, rdma.PlaneReplication), conn(t, f2, 1, rdma.PlaneReplication)
	e32, e23 := conn(t, f3, 2, rdma.PlaneReplication), conn(t, f2, 3, rdma.PlaneReplication)
	const rw = rdma.AccessRemoteRead | rdma.AccessRemoteWrite
	// Revoke 3 first: granting 1 afterwards must not reopen 3's connection.
	if err := e23.SetRemoteAccess(rdma.AccessRemoteRead); err != nil {
		t.Fatalf("revoke 3: %v", err)
	}
	if err := e21.SetRemoteAccess(rw); err != nil {
		t.Fatalf("grant 1: %v", err)
	}
	target := f2.Region().Bytes()[4096 : 4096+64]

	fill(f1.Region().Bytes()[0:64], 0x21)
	post(t, e12, rdma.WorkRequest{ID: 500, Op: rdma.OpWrite, RemoteOffset: 4096, Length: 64})
	checkCompletion(t, r1.wait(t, c, 1, waitLimitNs)[0], 500, rdma.OpWrite, rdma.StatusSuccess, 2, rdma.PlaneReplication)
	if !allEqual(target, 0x21) {
		t.Fatal("the grantee's write is not visible at the target")
	}

	// The foreign connection: same target bytes, no grant.
	fill(f3.Region().Bytes()[0:64], 0x33)
	post(t, e32, rdma.WorkRequest{ID: 501, Op: rdma.OpWrite, RemoteOffset: 4096, Length: 64})
	checkCompletion(t, r3.wait(t, c, 1, waitLimitNs)[0], 501, rdma.OpWrite, rdma.StatusRemoteInvalidRequest, 2, rdma.PlaneReplication)
	if !allEqual(target, 0x21) {
		t.Fatal("a write through a connection without the grant changed the target")
	}
	if !c.WaitUntil(func() bool { return e32.State() == rdma.ConnError && e23.State() == rdma.ConnError }, waitLimitNs) {
		t.Fatalf("after the refused foreign write: writer end %v, target end %v, want both %v", e32.State(), e23.State(), rdma.ConnError)
	}
	if e12.State() != rdma.ConnReady || e21.State() != rdma.ConnReady {
		t.Fatalf("the grantee's connection is %v/%v after a foreign refusal, want ready", e12.State(), e21.State())
	}
	fill(f1.Region().Bytes()[0:8], 0x22)
	post(t, e12, rdma.WorkRequest{ID: 502, Op: rdma.OpWrite, RemoteOffset: 4096, Length: 8})
	checkCompletion(t, r1.wait(t, c, 2, waitLimitNs)[1], 502, rdma.OpWrite, rdma.StatusSuccess, 2, rdma.PlaneReplication)

	// Revoke the grant: the old grantee's next write is refused.
	if err := e21.SetRemoteAccess(rdma.AccessRemoteRead); err != nil {
		t.Fatalf("revoke 1: %v", err)
	}
	fill(f1.Region().Bytes()[0:64], 0x44)
	post(t, e12, rdma.WorkRequest{ID: 503, Op: rdma.OpWrite, RemoteOffset: 4096, Length: 64})
	checkCompletion(t, r1.wait(t, c, 3, waitLimitNs)[2], 503, rdma.OpWrite, rdma.StatusRemoteInvalidRequest, 2, rdma.PlaneReplication)
	if !allEqual(target[:8], 0x22) || !allEqual(target[8:], 0x21) {
		t.Fatal("a write after the revocation changed the target")
	}
	if !c.WaitUntil(func() bool { return e12.State() == rdma.ConnError && e21.State() == rdma.ConnError }, waitLimitNs) {
		t.Fatalf("after the revoked write: writer end %v, target end %v, want both %v", e12.State(), e21.State(), rdma.ConnError)
	}

	// A repair to read-only is not a grant.
	if err := e21.Reset(rdma.AccessRemoteRead); err != nil {
		t.Fatalf("reset target end: %v", err)
	}
	if err := e12.Reset(rdma.AccessRemoteRead); err != nil {
		t.Fatalf("reset writer end: %v", err)
	}
	c.WaitUntil(func() bool { r1.poll(); return false }, 1_000_000) // what the resets flushed
	n0 := len(r1.got)
	post(t, e12, rdma.WorkRequest{ID: 504, Op: rdma.OpWrite, RemoteOffset: 4096, Length: 64})
	got := r1.wait(t, c, n0+1, waitLimitNs)
	checkCompletion(t, got[n0], 504, rdma.OpWrite, rdma.StatusRemoteInvalidRequest, 2, rdma.PlaneReplication)
	if !allEqual(target[:8], 0x22) || !allEqual(target[8:], 0x21) {
		t.Fatal("a write after a read-only repair changed the target")
	}
}
