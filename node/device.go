package node

import (
	"fmt"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/discover"
)

// FindRoCEv2 finds the RoCE v2 GID with an IPv4 address of an RDMA device
// ("" for the first device), for programs that do not name a netdev. Use
// the entry's Device, Port and Index as Config.Device.
func FindRoCEv2(device string) (rdma.GIDEntry, error) {
	d := &discover.Discovery{}
	if device == "" {
		devs, err := d.Devices()
		if err != nil {
			return rdma.GIDEntry{}, err
		}
		device = devs[0]
	}
	ports, err := d.Ports(device)
	if err != nil {
		return rdma.GIDEntry{}, err
	}
	for _, p := range ports {
		tab, err := d.GIDTable(device, p)
		if err != nil {
			continue
		}
		for _, g := range tab {
			if _, ok := g.IPv4(); ok && g.Type == rdma.GIDTypeRoCEv2 {
				return g, nil
			}
		}
	}
	return rdma.GIDEntry{}, fmt.Errorf("%w: device %s has no RoCE v2 GID with an IPv4 address", rdma.ErrGIDNotFound, device)
}

// Spec is the DeviceSpec that selects exactly g.
func Spec(g rdma.GIDEntry) rdma.DeviceSpec {
	return rdma.DeviceSpec{Device: g.Device, Port: g.Port, GIDIndex: g.Index}
}
