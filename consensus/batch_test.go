package consensus

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

// countConn counts Post calls on one connection.
type countConn struct {
	rdma.Conn
	posts, wrs int
}

func (c *countConn) Post(wrs []rdma.WorkRequest) (int, error) {
	c.posts++
	c.wrs += len(wrs)
	return c.Conn.Post(wrs)
}

// countStep checks, around every Step, that each peer's connection was
// posted to at most once.
type countStep struct {
	t     *testing.T
	r     *Replica
	conns []*countConn
	steps int
	multi int // Steps that queued more than one work request for a peer
}

func (s *countStep) Step(now int64) int64 {
	for _, c := range s.conns {
		c.posts, c.wrs = 0, 0
	}
	wake := s.r.Step(now)
	s.steps++
	for _, c := range s.conns {
		if c.posts > 1 {
			s.t.Errorf("Step at %d posted %d times to node %d (%d work requests)", now, c.posts, c.Peer(), c.wrs)
		}
		if c.wrs > 1 {
			s.multi++
		}
	}
	return wake
}

// The replication path crosses into the fabric once per peer per Step:
// every piece of every slot a Step writes (and the control writes beside
// them) goes to a peer in one Conn.Post.
func TestOnePostPerPeerPerStep(t *testing.T) {
	c := newCluster(t, 3, 3, func(cfg *Config) {
		cfg.MaxPayloadBytes = 4096 // five MaxWriteBytes pieces a full slot
	})
	ldr := waitLeader(t, c, 20_000_000)
	r := c.reps[ldr]
	s := &countStep{t: t, r: r}
	for i := range r.peers {
		cc := &countConn{Conn: r.peers[i].conn}
		r.peers[i].conn = cc
		s.conns = append(s.conns, cc)
	}
	c.w.SetStepper(ldr, s)
	// A burst fills slots of several pieces each.
	if ok, _ := c.submitN(t, ldr, 0, 200); ok != 200 {
		t.Fatal("proposals did not commit")
	}
	if s.multi == 0 {
		t.Fatalf("no Step over %d queued more than one work request for a peer: the test does not exercise batching", s.steps)
	}
	t.Logf("%d Steps, %d of them posted several work requests to a peer in one call", s.steps, s.multi)
}

func TestBatchFraming(t *testing.T) {
	var payload []byte
	cmds := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{7}, 40)}
	for _, c := range cmds {
		payload = binary.LittleEndian.AppendUint32(payload, uint32(len(c)))
		payload = append(payload, c...)
	}
	var got [][]byte
	if !forEachCommand(payload, func(c []byte) { got = append(got, c) }) || len(got) != 3 {
		t.Fatalf("framing decoded %d commands", len(got))
	}
	for i := range cmds {
		if !bytes.Equal(got[i], cmds[i]) {
			t.Fatalf("command %d = %q, want %q", i, got[i], cmds[i])
		}
	}
	if forEachCommand(payload[:len(payload)-1], func([]byte) {}) {
		t.Fatal("truncated framing accepted")
	}
}
