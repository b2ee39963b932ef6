package rdma

import (
	"errors"
	"fmt"
	"net/netip"
)

// Discovery errors, for errors.Is.
var (
	// ErrNoDevice: there is no RDMA device, or none on the requested
	// interface. It matches ErrNotSupported as well, so callers that only
	// ask "can RDMA run here?" need one check.
	ErrNoDevice = fmt.Errorf("%w: no RDMA device", ErrNotSupported)
	// ErrGIDNotFound: the device exists but has no usable GID for the
	// request (no RoCE v2 GID carrying the interface's IPv4 address, or an
	// explicit GID index whose entry is empty).
	ErrGIDNotFound = errors.New("rdma: no matching GID")
)

// GID types as the kernel names them in gid_attrs/types/<index>.
const (
	GIDTypeRoCEv1 = "IB/RoCE v1"
	GIDTypeRoCEv2 = "RoCE v2"
)

// AutoGIDIndex in DeviceSpec.GIDIndex asks Discover to choose the GID by the
// interface's IPv4 address.
const AutoGIDIndex = -1

// DeviceSpec says which RDMA port and GID a node uses. Either name an
// interface (Interface, GIDIndex = AutoGIDIndex): its RDMA device is found
// and the RoCE v2 GID carrying its IPv4 address is chosen; or name the device
// and GID index outright (Device, GIDIndex >= 0), for hosts where the
// automatic choice is wrong.
type DeviceSpec struct {
	Interface string // netdev, e.g. "eth0"
	Device    string // RDMA device, e.g. "rxe0"
	Port      int    // 1-based port; 0 means the first port that fits
	GIDIndex  int    // index in the port's GID table, or AutoGIDIndex
}

// GIDEntry is one populated row of a port's GID table.
type GIDEntry struct {
	Device string
	Port   int
	Index  int
	GID    [16]byte
	Type   string // GIDTypeRoCEv1, GIDTypeRoCEv2, or "" when unreadable
	Netdev string // "" when the entry is bound to no netdev
}

// IPv4 returns the IPv4 address of an IPv4-mapped GID (::ffff:a.b.c.d).
func (g GIDEntry) IPv4() (netip.Addr, bool) {
	a := netip.AddrFrom16(g.GID)
	if !a.Is4In6() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func (g GIDEntry) String() string {
	return fmt.Sprintf("%s port %d gid[%d] %s %q on %q", g.Device, g.Port, g.Index,
		netip.AddrFrom16(g.GID), g.Type, g.Netdev)
}
