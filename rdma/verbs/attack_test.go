package verbs

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	ibv "github.com/rdmaconsensus/mu/cgo/verbs"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/bootstrap"
)

// Attacks on the RDMA side, on the real device. The region's layout here
// mimics mu's: words the background plane may write at [bgOff, bgOff+bgLen),
// the "log" beyond.
const (
	bgOff, bgLen = 64, 192
	logOff       = 8192
)

// leastPrivilege is the production access: Config defaults plus a
// confined background plane.
func leastPrivilege(c *Config) {
	d := DefaultConfig()
	c.RegionAccess, c.InitialAccess = d.RegionAccess, d.InitialAccess
	c.BackgroundWriteOffset, c.BackgroundWriteBytes = bgOff, bgLen
	c.SetTransportTimeoutNs(100_000_000)
}

// postRaw posts one request on c's queue pair in service with the given
// remote address and rkey, as a peer holding a leaked rkey would: Post
// always uses the ones of the handshake.
func postRaw(t *testing.T, c *Conn, id uint64, op ibv.Opcode, remoteAddr uint64, rkey uint32, length uint32) {
	t.Helper()
	c.mu.RLock()
	defer c.mu.RUnlock()
	q := c.cur
	seq := q.posted.Load()
	q.ring[seq&q.mask] = slot{id: id, op: rdma.OpWrite, signaled: true}
	if op == ibv.OpRead {
		q.ring[seq&q.mask].op = rdma.OpRead
	}
	wr := []ibv.SendWR{{ID: seq, Opcode: op, Flags: ibv.FlagSignaled, LocalAddr: c.f.mem.Addr(), LKey: c.f.lkey[c.plane],
		RemoteAddr: remoteAddr, RKey: rkey, Length: length}}
	if _, err := q.qp.Post(wr); err != nil {
		t.Fatal(err)
	}
	q.posted.Store(seq + 1)
}

func fillBytes(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

func untouched(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// New queue pairs grant no remote write on the replication plane, no
// atomics anywhere, and the background plane reaches only its words; the
// permission switch still grants the log.
func TestAttackLeastPrivilege(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, leastPrivilege)
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	target := f2.Region().Bytes()
	fillBytes(f1.Region().Bytes()[:64], 0xEE)
	expect := func(c rdma.Conn, wr rdma.WorkRequest, want rdma.Status) {
		t.Helper()
		if _, err := c.Post([]rdma.WorkRequest{wr}); err != nil {
			t.Fatal(err)
		}
		got := pollN(t, f1, 1, waitNs)[0]
		if got.ID != wr.ID || got.Status != want {
			t.Fatalf("%v %v at %d on %v: %+v, want %v", wr.Op, wr.ID, wr.RemoteOffset, c.Plane(), got, want)
		}
		for _, e := range []rdma.Conn{c, f2.Conn(1, c.Plane())} {
			if e.State() == rdma.ConnError {
				if err := e.Reset(e.RemoteAccess()); err != nil {
					t.Fatal(err)
				}
			}
		}
		drainFor(f1, 1_000_000)
	}
	repl, bg := f1.Conn(2, rdma.PlaneReplication), f1.Conn(2, rdma.PlaneBackground)
	if a := f2.Conn(1, rdma.PlaneReplication).RemoteAccess(); a != rdma.AccessRemoteRead {
		t.Fatalf("a new replication connection grants %v, want read only", a)
	}
	// Replication plane: read yes, write no (until granted).
	expect(repl, rdma.WorkRequest{ID: 1, Op: rdma.OpRead, LocalOffset: 1024, RemoteOffset: logOff, Length: 64}, rdma.StatusSuccess)
	expect(repl, rdma.WorkRequest{ID: 2, Op: rdma.OpWrite, RemoteOffset: logOff, Length: 64}, rdma.StatusRemoteInvalidRequest)
	// Background plane: its words yes; the log, the header, reads
	// elsewhere and atomics no.
	expect(bg, rdma.WorkRequest{ID: 3, Op: rdma.OpWrite, RemoteOffset: bgOff, Length: 8}, rdma.StatusSuccess)
	expect(bg, rdma.WorkRequest{ID: 4, Op: rdma.OpRead, LocalOffset: 1024, RemoteOffset: bgOff, Length: bgLen}, rdma.StatusSuccess)
	expect(bg, rdma.WorkRequest{ID: 5, Op: rdma.OpWrite, RemoteOffset: logOff, Length: 64}, rdma.StatusRemoteAccessError)
	expect(bg, rdma.WorkRequest{ID: 6, Op: rdma.OpWrite, RemoteOffset: 0, Length: 8}, rdma.StatusRemoteAccessError)
	expect(bg, rdma.WorkRequest{ID: 7, Op: rdma.OpWrite, RemoteOffset: bgOff + bgLen - 4, Length: 8}, rdma.StatusRemoteAccessError)
	expect(bg, rdma.WorkRequest{ID: 8, Op: rdma.OpRead, LocalOffset: 1024, RemoteOffset: logOff, Length: 64}, rdma.StatusRemoteAccessError)
	expect(bg, rdma.WorkRequest{ID: 9, Op: rdma.OpCompareSwap, LocalOffset: 1024, RemoteOffset: bgOff + 8, Length: 8, Compare: 0, Swap: 1}, rdma.StatusRemoteInvalidRequest)
	if !untouched(target[logOff:logOff+64]) || !untouched(target[:bgOff]) || !untouched(target[bgOff+8:bgOff+bgLen+8]) {
		t.Fatal("a refused request changed the target's region")
	}
	if target[bgOff] != 0xEE {
		t.Fatal("the background write to its words did not land")
	}
	// The permission switch grants the log.
	if err := f2.Conn(1, rdma.PlaneReplication).SetRemoteAccess(rdma.AccessRemoteRead | rdma.AccessRemoteWrite); err != nil {
		t.Fatal(err)
	}
	expect(repl, rdma.WorkRequest{ID: 10, Op: rdma.OpWrite, RemoteOffset: logOff, Length: 64}, rdma.StatusSuccess)
	if target[logOff] != 0xEE {
		t.Fatal("the granted write did not land")
	}
}

// A leaked rkey of the log is of no use through a queue pair that may not
// write it: the replication one without the grant, or the background one
// (another protection domain), granted or not.
func TestAttackLeakedRKeyOnOtherQueuePairs(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, leastPrivilege)
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	target := f2.Region().Bytes()
	fillBytes(f1.Region().Bytes()[:64], 0xAB)
	leaked := f2.VerbsConn(1, rdma.PlaneReplication).Local() // the log's address and rkey
	bgKey := f2.VerbsConn(1, rdma.PlaneBackground).Local().RKey
	if leaked.RKey == bgKey {
		t.Fatal("both planes hand out the same rkey")
	}
	for i, c := range []struct {
		plane rdma.Plane
		rkey  uint32
		want  rdma.Status
	}{
		{rdma.PlaneReplication, leaked.RKey, rdma.StatusRemoteInvalidRequest}, // no grant
		{rdma.PlaneBackground, leaked.RKey, rdma.StatusRemoteAccessError},     // the log's rkey, another PD
		{rdma.PlaneBackground, bgKey, rdma.StatusRemoteAccessError},           // its own rkey, outside its range
	} {
		conn := f1.VerbsConn(2, c.plane)
		postRaw(t, conn, uint64(20+i), ibv.OpWrite, leaked.Addr+logOff, c.rkey, 64)
		got := pollN(t, f1, 1, waitNs)[0]
		if got.Status != c.want {
			t.Errorf("write of the log through %v with rkey %#x: %v, want %v", c.plane, c.rkey, got.Status, c.want)
		}
		for _, e := range []rdma.Conn{conn, f2.Conn(1, c.plane)} {
			if e.State() == rdma.ConnError {
				if err := e.Reset(e.RemoteAccess()); err != nil {
					t.Fatal(err)
				}
			}
		}
		drainFor(f1, 1_000_000)
	}
	if !untouched(target[logOff : logOff+64]) {
		t.Fatal("a write with a leaked rkey reached the log")
	}
}

// A queue pair the victim never connected to: the attacker builds its own,
// aims it at the victim's replication queue pair (its number and the
// expected packet sequence number, both in a plain-TCP hello) from the same
// GID as the permitted peer, and writes the log with the leaked rkey. With
// the victim's remote write off on that connection, nothing lands. With it
// on, rxe checks only the destination QP, the source address and the PSN:
// the outcome is logged (docs/security.md records it).
func TestAttackForeignQueuePairInjection(t *testing.T) {
	cl := newCluster(t, 3, 1<<16, leastPrivilege)
	f1, f2, f3 := cl.fabrics[1], cl.fabrics[2], cl.fabrics[3]
	victim := f2.VerbsConn(1, rdma.PlaneReplication)
	leader := f1.VerbsConn(2, rdma.PlaneReplication)
	leaked := victim.Local()
	inject := func(val byte) bool {
		t.Helper()
		qp, err := f3.pd.CreateQP(f3.cq, ibv.QPConfig{MaxSendWR: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer qp.Close()
		p := leader.cur.params
		// The PSN the victim expects next: a reset rewinds both ends to
		// the handshake's PSNs, and each request since took one.
		p.SQPSN = (leader.Local().PSN + uint32(leader.cur.posted.Load()-leader.cur.floor)) & (1<<24 - 1)
		p.Access = 0
		if err := qp.Connect(&p); err != nil {
			t.Fatal(err)
		}
		fillBytes(f3.Region().Bytes()[:64], val)
		if _, err := qp.Post([]ibv.SendWR{{ID: 1, Opcode: ibv.OpWrite, Flags: ibv.FlagSignaled, LocalAddr: f3.mem.Addr(), LKey: f3.lkey[rdma.PlaneReplication],
			RemoteAddr: leaked.Addr + logOff, RKey: leaked.RKey, Length: 64}}); err != nil {
			t.Fatal(err)
		}
		// The victim answers the permitted peer, not the attacker: the
		// attacker's request ends in a retry error either way. Wait for it.
		wcs := make([]ibv.WC, 4)
		waitUntil(f3, func() bool { n, _ := f3.cq.Poll(wcs); return n > 0 }, waitNs)
		return f2.Region().Bytes()[logOff] == val
	}
	if inject(0x11) {
		t.Fatal("an injected write reached the log of a connection without remote write")
	}
	t.Logf("rxe, remote write off: injected write refused; victim's connection now %v, permitted peer's %v", victim.State(), leader.State())
	rw := rdma.AccessRemoteRead | rdma.AccessRemoteWrite
	recoverLink(t, f1, leader, victim, rw)
	drainFor(f1, 1_000_000)
	landed := inject(0x22)
	t.Logf("rxe, remote write granted to the permitted peer: an injected write from a foreign queue pair with the expected PSN landed: %v; victim's connection now %v, permitted peer's %v", landed, victim.State(), leader.State())
}

// recoverLink measures the denial of service a refused injected write
// causes and the repair that ends it: the permitted peer's next write
// (what it sees, and when), then both ends reset as the permission
// manager's repair (victim side, to access) and the leader's
// reconnection do, then a write that must land.
func recoverLink(t *testing.T, f1 *Fabric, leader, victim *Conn, access rdma.Access) {
	t.Helper()
	start := f1.Now()
	if _, err := leader.Post([]rdma.WorkRequest{{ID: 900, Op: rdma.OpRead, LocalOffset: 1024, RemoteOffset: logOff, Length: 8}}); err != nil {
		t.Fatal(err)
	}
	var seen rdma.Completion
	for _, c := range pollN(t, f1, 1, waitNs) {
		if c.ID == 900 {
			seen = c
		}
	}
	t.Logf("denial of service: the permitted peer's next request completes %v after %.1f µs (victim %v, peer %v)",
		seen.Status, float64(f1.Now()-start)/1e3, victim.State(), leader.State())
	if seen.Status == rdma.StatusSuccess {
		t.Fatal("the permitted peer's request succeeded on a connection the refusal broke")
	}
	start = f1.Now()
	if err := victim.Reset(access); err != nil {
		t.Fatal(err)
	}
	if err := leader.Reset(leader.RemoteAccess()); err != nil {
		t.Fatal(err)
	}
	resetNs := f1.Now() - start
	drainFor(f1, 1_000_000)
	start = f1.Now()
	if _, err := leader.Post([]rdma.WorkRequest{{ID: 901, Op: rdma.OpRead, LocalOffset: 1024, RemoteOffset: logOff, Length: 8}}); err != nil {
		t.Fatal(err)
	}
	if c := pollN(t, f1, 1, waitNs)[0]; c.ID != 901 || c.Status != rdma.StatusSuccess {
		t.Fatalf("after resetting both ends: %+v", c)
	}
	t.Logf("recovery: both ends reset in %.1f µs, then a read round trip of %.1f µs", float64(resetNs)/1e3, float64(f1.Now()-start)/1e3)
}

// The bootstrap over real queue pairs: a forged hello then a hang-up
// leaves the link working on the same queue pairs; a real redial swaps in
// new ones under the same Conn.
func TestAttackBootstrapKeepsRealLink(t *testing.T) {
	cl := newCluster(t, 2, 1<<16, leastPrivilege)
	f1, f2 := cl.fabrics[1], cl.fabrics[2]
	// The listener activates after its last frame: wait for its outcome.
	inbound := make(chan error, 4)
	boot := func(f *Fabric) *bootstrap.Bootstrapper {
		b, err := bootstrap.New(bootstrap.Config{ClusterID: f.cfg.ClusterID, Self: f.Self(), Peers: f.cfg.Peers, Timeout: 2 * time.Second, Peering: f.Peering(),
			OnInbound: func(_ net.Addr, _ rdma.NodeID, err error) { inbound <- err }})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1, b2 := boot(f1), boot(f2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b2.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	outcome := func() error {
		t.Helper()
		select {
		case err := <-inbound:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("no outcome from the listener")
		}
		return nil
	}
	if _, err := b1.Exchange(ctx, 2, ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := outcome(); err != nil {
		t.Fatal(err)
	}
	c12, c21 := f1.VerbsConn(2, rdma.PlaneBackground), f2.VerbsConn(1, rdma.PlaneBackground)
	write := func(id uint64, v byte) {
		t.Helper()
		f1.Region().Bytes()[0] = v
		if _, err := c12.Post([]rdma.WorkRequest{{ID: id, Op: rdma.OpWrite, RemoteOffset: bgOff, Length: 1}}); err != nil {
			t.Fatal(err)
		}
		if c := pollN(t, f1, 1, waitNs)[0]; c.ID != id || c.Status != rdma.StatusSuccess || f2.Region().Bytes()[bgOff] != v {
			t.Fatalf("write %d: %+v", id, c)
		}
	}
	write(1, 1)
	qpn, swaps := c21.QPN(), c21.Swaps()

	// Forged hello as node 1, with node 1's real endpoints, then a hang-up.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(helloFrame(f1.cfg.ClusterID, 1, 2, f1.LocalEndpoints(2))); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, make([]byte, 12)); err != nil {
		t.Fatalf("no answer to the forged hello: %v", err)
	}
	conn.Close()
	if err := outcome(); err == nil {
		t.Fatal("the forged handshake succeeded")
	}
	if n := f2.stagedCount(1); n != 0 || c21.QPN() != qpn || c21.Swaps() != swaps {
		t.Fatalf("after a forged hello and a hang-up: %d prepared sets left, qpn %#x (was %#x), %d swaps (were %d)", n, c21.QPN(), qpn, c21.Swaps(), swaps)
	}
	write(2, 2)

	// The real node 1 redials: new queue pairs, same connections.
	if _, err := b1.Exchange(ctx, 2, ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := outcome(); err != nil {
		t.Fatal(err)
	}
	if c21.QPN() == qpn || c21.Swaps() != swaps+1 || f2.Conn(1, rdma.PlaneBackground) != rdma.Conn(c21) {
		t.Fatalf("after a real redial: qpn %#x (was %#x), %d swaps (were %d)", c21.QPN(), qpn, c21.Swaps(), swaps)
	}
	write(3, 3)
	if _, ok := b2.Remote(1); !ok {
		t.Fatal("listener lost its record of node 1")
	}
}

// helloFrame is a bootstrap hello frame as a raw client writes it.
func helloFrame(cluster uint64, from, to rdma.NodeID, eps []rdma.Endpoint) []byte {
	var body []byte
	body = binary.BigEndian.AppendUint64(body, cluster)
	body = binary.BigEndian.AppendUint16(body, uint16(from))
	body = binary.BigEndian.AppendUint16(body, uint16(to))
	body = append(body, byte(len(eps)))
	for _, e := range eps {
		body = bootstrap.AppendEndpoint(body, e)
	}
	f := binary.BigEndian.AppendUint16([]byte("MuBs"), rdma.ProtocolVersion)
	f = append(f, 1, 0) // hello, reserved
	f = binary.BigEndian.AppendUint32(f, uint32(len(body)))
	f = append(f, body...)
	return binary.BigEndian.AppendUint32(f, crc32.Checksum(f, crc32.MakeTable(crc32.Castagnoli)))
}

func (f *Fabric) stagedCount(peer rdma.NodeID) int {
	f.stageMu.Lock()
	defer f.stageMu.Unlock()
	return len(f.staged[peer])
}
