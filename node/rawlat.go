package node

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/verbs"
)

// RawLatency measures n signaled one-sided operations of size bytes
// between two queue pairs of this process on the device gid belongs to:
// from Post to the completion, which for a write arrives with the
// target's acknowledgement (a full round trip, as a commit needs; perftest's
// ib_write_lat prints half of it). It is the floor mu's figures are
// compared with in the same run. record receives each sample, in ns.
func RawLatency(gid rdma.GIDEntry, op rdma.Op, size, n int, record func(latencyNs int64)) error {
	mk := func(self, peer rdma.NodeID) (*verbs.Fabric, error) {
		c := verbs.DefaultConfig()
		c.Self, c.Peers, c.ClusterID = self, []rdma.NodeID{peer}, 0x6d75
		c.Device, c.Port, c.GIDIndex = gid.Device, uint8(gid.Port), gid.Index
		c.RegionBytes = 1 << 20
		c.InitialAccess[rdma.PlaneReplication] |= rdma.AccessRemoteWrite // no permission switch here
		return verbs.New(c)
	}
	a, err := mk(1, 2)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := mk(2, 1)
	if err != nil {
		return err
	}
	defer b.Close()
	ea, err := a.Prepare(2)
	if err != nil {
		return err
	}
	eb, err := b.Prepare(1)
	if err != nil {
		return err
	}
	if err := a.Connect(2, eb); err != nil {
		return err
	}
	if err := b.Connect(1, ea); err != nil {
		return err
	}
	return FabricRawLatency(a, 2, op, size, n, record)
}

// FabricRawLatency times n signaled one-sided operations of size bytes
// from f to peer on the replication plane, post to completion, as
// RawLatency does on a device: over any connected Fabric (rdma/inproc's,
// for a figure labelled as in-process). The peer must let f write (or
// read) its region. record receives each sample, in ns, after a warm-up.
func FabricRawLatency(f rdma.Fabric, peer rdma.NodeID, op rdma.Op, size, n int, record func(latencyNs int64)) error {
	conn := f.Conn(peer, rdma.PlaneReplication)
	if conn == nil {
		return fmt.Errorf("no connection to node %d", peer)
	}
	comps := make([]rdma.Completion, 8)
	warm := max(n/10, 10)
	wr := []rdma.WorkRequest{{Op: op, Length: uint32(size)}}
	for i := range n + warm {
		wr[0].ID = uint64(i + 1)
		start := time.Now()
		if _, err := conn.Post(wr); err != nil {
			return fmt.Errorf("post %s: %w", op, err)
		}
		deadline := start.Add(5 * time.Second)
		for got := false; !got; {
			k := f.Poll(comps)
			for _, c := range comps[:k] {
				if c.Status != rdma.StatusSuccess {
					return fmt.Errorf("%s completed with %s", op, c.Status)
				}
				got = got || c.ID == wr[0].ID
			}
			if !got {
				if time.Now().After(deadline) {
					return errors.New("no completion within 5s")
				}
				runtime.Gosched()
			}
		}
		if i >= warm {
			record(int64(time.Since(start)))
		}
	}
	return nil
}
