// Package discover finds RDMA devices, ports and RoCE v2 GIDs in sysfs and
// picks the one a node uses (rdma.DeviceSpec); it is the only part of mu
// that reads sysfs and rtnetlink for RDMA.
package discover

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/Mellanox/rdmamap"
	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/rdmaconsensus/mu/rdma"
	"golang.org/x/sys/unix"
)

// DefaultSysfsRoot is where sysfs is mounted on a normal Linux host.
const DefaultSysfsRoot = "/sys"

// Discovery finds RDMA devices and GIDs in a sysfs tree.
//
// On the real sysfs (SysfsRoot "" or "/sys", and rdmamap's class directory
// left at its default) device lists, port lists and the netdev-to-device
// mapping come from github.com/Mellanox/rdmamap. rdmamap hard-codes its
// paths in package variables, so for any other root (fixture trees in tests)
// Discovery reads the same files itself. GID tables are always read by
// Discovery: rdmamap has no reader for them.
type Discovery struct {
	// SysfsRoot is where sysfs is mounted; "" means DefaultSysfsRoot.
	SysfsRoot string
	// InterfaceAddrs lists a netdev's IPv4 addresses; nil means ask the
	// kernel over rtnetlink. Tests on fixture trees supply their own.
	InterfaceAddrs func(netdev string) ([]netip.Addr, error)

	// ownReader makes Discovery read sysfs itself even where rdmamap could,
	// so tests can compare the two on a real device.
	ownReader bool
}

func (d *Discovery) root() string {
	if d.SysfsRoot == "" {
		return DefaultSysfsRoot
	}
	return d.SysfsRoot
}

func (d *Discovery) classDir() string {
	return filepath.Join(d.root(), "class", "infiniband")
}

// usesRdmamap reports whether rdmamap reads the same tree as d.
func (d *Discovery) usesRdmamap() bool {
	return !d.ownReader && filepath.Clean(rdmamap.RdmaClassDir) == filepath.Clean(d.classDir())
}

// Devices lists the RDMA devices, sorted. None is an error wrapping
// ErrNoDevice.
func (d *Discovery) Devices() ([]string, error) {
	var devs []string
	if d.usesRdmamap() {
		devs = rdmamap.GetRdmaDeviceList()
	} else {
		ents, err := os.ReadDir(d.classDir())
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("rdma: list devices in %s: %w", d.classDir(), err)
		}
		for _, e := range ents {
			devs = append(devs, e.Name())
		}
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("%w in %s", rdma.ErrNoDevice, d.classDir())
	}
	slices.Sort(devs)
	return devs, nil
}

// Ports lists a device's port numbers, sorted.
func (d *Discovery) Ports(device string) ([]int, error) {
	var names []string
	if d.usesRdmamap() {
		names = rdmamap.GetPorts(device)
	} else {
		ents, err := os.ReadDir(filepath.Join(d.classDir(), device, "ports"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("rdma: list ports of %s: %w", device, err)
		}
		for _, e := range ents {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w named %q in %s", rdma.ErrNoDevice, device, d.classDir())
	}
	ports := make([]int, 0, len(names))
	for _, n := range names {
		p, err := strconv.Atoi(n)
		if err != nil || p < 1 {
			return nil, fmt.Errorf("rdma: device %s: port directory %q is not a port number", device, n)
		}
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports, nil
}

// GIDTable returns the populated entries of a port's GID table, by index.
// Empty rows (all-zero GID; rxe also fails reads of their attributes) are
// left out.
func (d *Discovery) GIDTable(device string, port int) ([]rdma.GIDEntry, error) {
	portDir := filepath.Join(d.classDir(), device, "ports", strconv.Itoa(port))
	gidDir := filepath.Join(portDir, "gids")
	ents, err := os.ReadDir(gidDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s port %d has no GID table (%s)", rdma.ErrNoDevice, device, port, gidDir)
		}
		return nil, fmt.Errorf("rdma: read GID table of %s port %d: %w", device, port, err)
	}
	var table []rdma.GIDEntry
	for _, e := range ents {
		idx, err := strconv.Atoi(e.Name())
		if err != nil || idx < 0 {
			continue // not a GID row
		}
		ent, ok, err := readGIDEntry(portDir, device, port, idx)
		if err != nil {
			return nil, err
		}
		if ok {
			table = append(table, ent)
		}
	}
	slices.SortFunc(table, func(a, b rdma.GIDEntry) int { return a.Index - b.Index })
	return table, nil
}

// readGIDEntry reads row idx; ok is false for an empty row.
func readGIDEntry(portDir, device string, port, idx int) (rdma.GIDEntry, bool, error) {
	i := strconv.Itoa(idx)
	raw, err := os.ReadFile(filepath.Join(portDir, "gids", i))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rdma.GIDEntry{}, false, nil
		}
		return rdma.GIDEntry{}, false, fmt.Errorf("rdma: read %s port %d gids/%d: %w", device, port, idx, err)
	}
	gid, err := ParseGID(strings.TrimSpace(string(raw)))
	if err != nil {
		return rdma.GIDEntry{}, false, fmt.Errorf("rdma: %s port %d gids/%d: %w", device, port, idx, err)
	}
	if gid == ([16]byte{}) {
		return rdma.GIDEntry{}, false, nil
	}
	ent := rdma.GIDEntry{Device: device, Port: port, Index: idx, GID: gid}
	// The kernel fails these reads (EINVAL) for rows it is still filling or
	// has no netdev for; such a row simply has no type or netdev.
	if b, err := os.ReadFile(filepath.Join(portDir, "gid_attrs", "types", i)); err == nil {
		ent.Type = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(portDir, "gid_attrs", "ndevs", i)); err == nil {
		ent.Netdev = strings.TrimSpace(string(b))
	}
	return ent, true, nil
}

// ParseGID parses a GID as sysfs prints it (eight colon-separated groups of
// four hex digits) or in any other IPv6 notation.
func ParseGID(s string) ([16]byte, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return [16]byte{}, fmt.Errorf("GID %q is not an IPv6-form address", s)
	}
	return a.As16(), nil
}

// DeviceForNetdev returns the RDMA device bound to a netdev.
func (d *Discovery) DeviceForNetdev(netdev string) (string, error) {
	if d.usesRdmamap() {
		dev, err := rdmamap.GetRdmaDeviceForNetdevice(netdev)
		if err != nil || dev == "" {
			return "", fmt.Errorf("%w on netdev %q (%v)", rdma.ErrNoDevice, netdev, err)
		}
		return dev, nil
	}
	devs, err := d.Devices()
	if err != nil {
		return "", err
	}
	for _, dev := range devs {
		nd, err := d.NetdevsForDevice(dev)
		if err != nil {
			return "", err
		}
		if slices.Contains(nd, netdev) {
			return dev, nil
		}
	}
	return "", fmt.Errorf("%w on netdev %q (devices: %s)", rdma.ErrNoDevice, netdev, strings.Join(devs, ", "))
}

// NetdevsForDevice returns the netdevs a device's GID tables are bound to,
// sorted and without duplicates.
func (d *Discovery) NetdevsForDevice(device string) ([]string, error) {
	ports, err := d.Ports(device)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ports {
		tab, err := d.GIDTable(device, p)
		if err != nil {
			return nil, err
		}
		for _, g := range tab {
			if g.Netdev != "" && !slices.Contains(out, g.Netdev) {
				out = append(out, g.Netdev)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Discover resolves spec to one GID entry.
//
// With GIDIndex >= 0 it needs Device (or Interface, to find the device) and
// returns that row, which must be populated. With AutoGIDIndex it needs
// Interface and returns the lowest-index RoCE v2 GID, bound to that
// interface, whose address is ::ffff:a.b.c.d for one of the interface's IPv4
// addresses. Errors wrap ErrNoDevice or ErrGIDNotFound and name the field.
func (d *Discovery) Discover(spec rdma.DeviceSpec) (rdma.GIDEntry, error) {
	if spec.Port < 0 {
		return rdma.GIDEntry{}, fmt.Errorf("rdma: device spec: port %d: must be 0 (any) or a 1-based port", spec.Port)
	}
	if spec.GIDIndex < rdma.AutoGIDIndex {
		return rdma.GIDEntry{}, fmt.Errorf("rdma: device spec: gid index %d: must be >= 0, or rdma.AutoGIDIndex", spec.GIDIndex)
	}
	dev := spec.Device
	if dev == "" {
		if spec.Interface == "" {
			return rdma.GIDEntry{}, errors.New("rdma: device spec: interface: required when device is not given")
		}
		var err error
		if dev, err = d.DeviceForNetdev(spec.Interface); err != nil {
			return rdma.GIDEntry{}, err
		}
	}
	ports, err := d.Ports(dev)
	if err != nil {
		return rdma.GIDEntry{}, err
	}
	if spec.Port != 0 {
		if !slices.Contains(ports, spec.Port) {
			return rdma.GIDEntry{}, fmt.Errorf("%w: device spec: port %d: %s has ports %v", rdma.ErrNoDevice, spec.Port, dev, ports)
		}
		ports = []int{spec.Port}
	}

	if spec.GIDIndex >= 0 {
		// One row, read directly: a table has up to 1024 rows (rxe), slow
		// to scan where sysfs reads are slow.
		for _, p := range ports {
			portDir := filepath.Join(d.classDir(), dev, "ports", strconv.Itoa(p))
			g, ok, err := readGIDEntry(portDir, dev, p, spec.GIDIndex)
			if err != nil {
				return rdma.GIDEntry{}, err
			}
			if ok {
				return g, nil
			}
		}
		return rdma.GIDEntry{}, fmt.Errorf("%w: device spec: gid index %d: empty or absent on %s ports %v",
			rdma.ErrGIDNotFound, spec.GIDIndex, dev, ports)
	}

	if spec.Interface == "" {
		return rdma.GIDEntry{}, fmt.Errorf("rdma: device spec: interface: required to choose a GID on %s (or give gid index)", dev)
	}
	addrs, err := d.interfaceAddrs(spec.Interface)
	if err != nil {
		return rdma.GIDEntry{}, fmt.Errorf("rdma: device spec: interface %q: %w", spec.Interface, err)
	}
	if len(addrs) == 0 {
		return rdma.GIDEntry{}, fmt.Errorf("%w: device spec: interface %q has no IPv4 address", rdma.ErrGIDNotFound, spec.Interface)
	}
	var seen []string
	for _, p := range ports {
		tab, err := d.GIDTable(dev, p)
		if err != nil {
			return rdma.GIDEntry{}, err
		}
		for _, g := range tab {
			seen = append(seen, g.String())
			if g.Type != rdma.GIDTypeRoCEv2 || g.Netdev != spec.Interface {
				continue
			}
			if ip, ok := g.IPv4(); ok && slices.Contains(addrs, ip) {
				return g, nil
			}
		}
	}
	return rdma.GIDEntry{}, fmt.Errorf("%w: device spec: interface %q: no RoCE v2 GID on %s for %v (table: %s)",
		rdma.ErrGIDNotFound, spec.Interface, dev, addrs, strings.Join(seen, "; "))
}

func (d *Discovery) interfaceAddrs(netdev string) ([]netip.Addr, error) {
	if d.InterfaceAddrs != nil {
		return d.InterfaceAddrs(netdev)
	}
	return IPv4Addrs(netdev)
}

// IPv4Addrs returns a netdev's IPv4 addresses, asked of the kernel over
// rtnetlink.
func IPv4Addrs(netdev string) ([]netip.Addr, error) {
	ifc, err := net.InterfaceByName(netdev)
	if err != nil {
		return nil, fmt.Errorf("rdma: netdev %q: %w", netdev, err)
	}
	conn, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("rdma: rtnetlink: %w", err)
	}
	defer conn.Close()
	msgs, err := conn.Address.List()
	if err != nil {
		return nil, fmt.Errorf("rdma: rtnetlink address list: %w", err)
	}
	var out []netip.Addr
	for _, m := range msgs {
		if m.Index != uint32(ifc.Index) || m.Family != unix.AF_INET || m.Attributes == nil {
			continue
		}
		// IFA_LOCAL is the interface's own address; IFA_ADDRESS is the
		// peer's on point-to-point links.
		ip := m.Attributes.Local
		if ip == nil {
			ip = m.Attributes.Address
		}
		if a, ok := netip.AddrFromSlice(ip.To4()); ok {
			out = append(out, a)
		}
	}
	return out, nil
}
