package sim

import (
	"errors"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/conformance"
)

// simBackend adapts the simulator to the conformance suite.
type simBackend struct{ seed uint64 }

func (simBackend) Name() string { return "sim" }

type simCluster struct{ w *World }

func (b simBackend) Start(t testing.TB, o conformance.Options) conformance.Cluster {
	w := New(b.seed, DefaultConfig().WithTransportTimeout(o.TransportTimeoutNs))
	for i := 1; i <= o.Nodes; i++ {
		w.AddNode(rdma.NodeID(i), o.RegionBytes)
	}
	w.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessAll, rdma.AccessAll})
	return simCluster{w}
}

func (c simCluster) Fabric(id rdma.NodeID) rdma.Fabric { return c.w.Node(id) }
func (c simCluster) Kill(id rdma.NodeID) error         { c.w.Crash(id, true); return nil }
func (c simCluster) WaitUntil(cond func() bool, limitNs int64) bool {
	return c.w.RunUntil(cond, c.w.Now()+limitNs)
}
func (c simCluster) RetryExceededAfterNs() int64 { return c.w.Config().TransportTimeoutNs }

// Reconnect redoes the handshake between a and b: in the simulator a new
// queue pair is a reset of each end, keeping the connection values.
func (c simCluster) Reconnect(a, b rdma.NodeID) error {
	for p := range rdma.NumPlanes {
		if err := errors.Join(c.w.Node(a).Conn(b, p).Reset(rdma.AccessAll), c.w.Node(b).Conn(a, p).Reset(rdma.AccessAll)); err != nil {
			return err
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	Seeds(t, 3, func(t *testing.T, seed uint64) {
		conformance.Run(t, simBackend{seed: seed})
	})
}
