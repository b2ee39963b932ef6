package node

import (
	"fmt"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// InprocFabrics builds, for users' tests, an in-process network with one
// connected fabric per member, each with the region cc needs: pass each
// as Config.Fabric. Close every node before closing the network. Peers
// may read each other's logs at first; write permission is granted by
// the leader change, as over RDMA.
func InprocFabrics(members []rdma.NodeID, cc consensus.Config) (*inproc.Network, map[rdma.NodeID]rdma.Fabric, error) {
	net, err := inproc.NewNetwork(inproc.DefaultConfig())
	if err != nil {
		return nil, nil, err
	}
	cc.Members = members
	if err := cc.Validate(); err != nil {
		net.Close()
		return nil, nil, fmt.Errorf("%w: Consensus: %w", ErrConfig, err)
	}
	fabrics := map[rdma.NodeID]rdma.Fabric{}
	for _, id := range members {
		f, err := net.AddNode(id, int(cc.RegionBytes()))
		if err != nil {
			net.Close()
			return nil, nil, err
		}
		fabrics[id] = f
	}
	if err := net.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll}); err != nil {
		net.Close()
		return nil, nil, err
	}
	return net, fabrics, nil
}
