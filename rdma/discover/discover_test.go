package discover

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/Mellanox/rdmamap"
	"github.com/rdmaconsensus/mu/rdma"
)

// fixtureGID is one row to write into a fixture GID table. Empty Type or
// Netdev leaves the attribute file out, as rxe fails reads of those.
type fixtureGID struct {
	index  int
	gid    string
	typ    string
	netdev string
}

// writeSysfsFixture builds a sysfs-shaped tree under root: the device
// directories live under devices/ and class/infiniband holds symlinks to
// them, as on a real kernel (rdmamap skips real directories there).
func writeSysfsFixture(t *testing.T, root string, devs map[string]map[int][]fixtureGID, tableSize int) {
	t.Helper()
	class := filepath.Join(root, "class", "infiniband")
	mustMkdir(t, class)
	for dev, ports := range devs {
		devDir := filepath.Join(root, "devices", "virtual", "infiniband", dev)
		for port, rows := range ports {
			portDir := filepath.Join(devDir, "ports", strconv.Itoa(port))
			for _, sub := range []string{"gids", "gid_attrs/types", "gid_attrs/ndevs"} {
				mustMkdir(t, filepath.Join(portDir, sub))
			}
			for i := range tableSize {
				mustWrite(t, filepath.Join(portDir, "gids", strconv.Itoa(i)), "0000:0000:0000:0000:0000:0000:0000:0000\n")
			}
			for _, r := range rows {
				i := strconv.Itoa(r.index)
				mustWrite(t, filepath.Join(portDir, "gids", i), r.gid+"\n")
				if r.typ != "" {
					mustWrite(t, filepath.Join(portDir, "gid_attrs", "types", i), r.typ+"\n")
				}
				if r.netdev != "" {
					mustWrite(t, filepath.Join(portDir, "gid_attrs", "ndevs", i), r.netdev+"\n")
				}
			}
		}
		if err := os.Symlink(filepath.Join("..", "..", "devices", "virtual", "infiniband", dev), filepath.Join(class, dev)); err != nil {
			t.Fatal(err)
		}
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rxeFixture mirrors the Soft-RoCE VM: rxe0 on eth0 (10.0.2.15) with the
// IPv4 GIDs at 0 (RoCE v1) and 1 (RoCE v2) and link-local ones after; plus a
// two-port mlx5_0 whose port 2 is on eth1 with two addresses, and an IPv6-
// only device.
func rxeFixture(t *testing.T) (root string, addrs map[string][]netip.Addr) {
	t.Helper()
	root = t.TempDir()
	writeSysfsFixture(t, root, map[string]map[int][]fixtureGID{
		"rxe0": {1: {
			{0, "0000:0000:0000:0000:0000:ffff:0a00:020f", rdma.GIDTypeRoCEv1, "eth0"},
			{1, "0000:0000:0000:0000:0000:ffff:0a00:020f", rdma.GIDTypeRoCEv2, "eth0"},
			{2, "fe80:0000:0000:0000:5054:00ff:fe12:3456", rdma.GIDTypeRoCEv1, "eth0"},
			{3, "fe80:0000:0000:0000:5054:00ff:fe12:3456", rdma.GIDTypeRoCEv2, "eth0"},
		}},
		"mlx5_0": {
			1: {{0, "fe80:0000:0000:0000:0000:0000:0000:0001", rdma.GIDTypeRoCEv2, "eth2"}},
			2: {
				{0, "0000:0000:0000:0000:0000:ffff:c0a8:0101", rdma.GIDTypeRoCEv1, "eth1"},
				// a RoCE v2 GID for an address eth1 no longer has
				{4, "0000:0000:0000:0000:0000:ffff:c0a8:0109", rdma.GIDTypeRoCEv2, "eth1"},
				{7, "0000:0000:0000:0000:0000:ffff:c0a8:0102", rdma.GIDTypeRoCEv2, "eth1"},
				// same address, bound to a VLAN netdev: must not be chosen for eth1
				{5, "0000:0000:0000:0000:0000:ffff:c0a8:0102", rdma.GIDTypeRoCEv2, "eth1.100"},
			},
		},
		"v6only": {1: {{0, "fe80:0000:0000:0000:0000:0000:0000:0002", rdma.GIDTypeRoCEv2, "eth3"}}},
	}, 16)
	addrs = map[string][]netip.Addr{
		"eth0": {netip.MustParseAddr("10.0.2.15")},
		"eth1": {netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("192.168.1.2")},
		"eth3": nil,
	}
	return root, addrs
}

func fixtureDiscovery(root string, addrs map[string][]netip.Addr) *Discovery {
	return &Discovery{SysfsRoot: root, InterfaceAddrs: func(n string) ([]netip.Addr, error) {
		a, ok := addrs[n]
		if !ok {
			return nil, errors.New("no such netdev")
		}
		return a, nil
	}}
}

func TestDiscoverFixtureTables(t *testing.T) {
	root, addrs := rxeFixture(t)
	d := fixtureDiscovery(root, addrs)

	devs, err := d.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"mlx5_0", "rxe0", "v6only"}; !slices.Equal(devs, want) {
		t.Fatalf("Devices = %v, want %v", devs, want)
	}
	ports, err := d.Ports("mlx5_0")
	if err != nil || !slices.Equal(ports, []int{1, 2}) {
		t.Fatalf("Ports(mlx5_0) = %v, %v; want [1 2]", ports, err)
	}
	tab, err := d.GIDTable("rxe0", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab) != 4 {
		t.Fatalf("GIDTable(rxe0,1) has %d populated rows, want 4 (empty rows skipped): %v", len(tab), tab)
	}
	g := tab[1]
	if g.Index != 1 || g.Type != rdma.GIDTypeRoCEv2 || g.Netdev != "eth0" {
		t.Fatalf("row 1 = %v", g)
	}
	if ip, ok := g.IPv4(); !ok || ip != netip.MustParseAddr("10.0.2.15") {
		t.Fatalf("row 1 IPv4 = %v %v", ip, ok)
	}
	if _, ok := tab[2].IPv4(); ok {
		t.Fatalf("link-local GID %v reported as IPv4", tab[2])
	}

	for netdev, want := range map[string]string{"eth0": "rxe0", "eth1": "mlx5_0", "eth2": "mlx5_0", "eth3": "v6only"} {
		got, err := d.DeviceForNetdev(netdev)
		if err != nil || got != want {
			t.Errorf("DeviceForNetdev(%s) = %q, %v; want %q", netdev, got, err, want)
		}
	}
	_, err = d.DeviceForNetdev("wlan0")
	if !errors.Is(err, rdma.ErrNoDevice) || !errors.Is(err, rdma.ErrNotSupported) {
		t.Errorf("DeviceForNetdev(wlan0) error = %v, want rdma.ErrNoDevice and rdma.ErrNotSupported", err)
	}
	nd, err := d.NetdevsForDevice("mlx5_0")
	if want := []string{"eth1", "eth1.100", "eth2"}; err != nil || !slices.Equal(nd, want) {
		t.Errorf("NetdevsForDevice(mlx5_0) = %v, %v; want %v", nd, err, want)
	}
}

func TestDiscoverChoosesRoCEv2IPv4GID(t *testing.T) {
	root, addrs := rxeFixture(t)
	d := fixtureDiscovery(root, addrs)
	cases := []struct {
		spec      rdma.DeviceSpec
		dev       string
		port, idx int
	}{
		{rdma.DeviceSpec{Interface: "eth0", GIDIndex: rdma.AutoGIDIndex}, "rxe0", 1, 1},
		// eth1's second address; index 4 has a stale address, 5 the wrong netdev
		{rdma.DeviceSpec{Interface: "eth1", GIDIndex: rdma.AutoGIDIndex}, "mlx5_0", 2, 7},
		{rdma.DeviceSpec{Interface: "eth1", Port: 2, GIDIndex: rdma.AutoGIDIndex}, "mlx5_0", 2, 7},
		// explicit index wins over the automatic choice
		{rdma.DeviceSpec{Device: "rxe0", GIDIndex: 3}, "rxe0", 1, 3},
		{rdma.DeviceSpec{Interface: "eth0", GIDIndex: 0}, "rxe0", 1, 0},
		{rdma.DeviceSpec{Device: "mlx5_0", Port: 2, GIDIndex: 4}, "mlx5_0", 2, 4},
	}
	for _, c := range cases {
		g, err := d.Discover(c.spec)
		if err != nil {
			t.Errorf("Discover(%+v): %v", c.spec, err)
			continue
		}
		if g.Device != c.dev || g.Port != c.port || g.Index != c.idx {
			t.Errorf("Discover(%+v) = %v, want %s port %d gid[%d]", c.spec, g, c.dev, c.port, c.idx)
		}
	}
}

func TestDiscoverErrors(t *testing.T) {
	root, addrs := rxeFixture(t)
	d := fixtureDiscovery(root, addrs)
	cases := []struct {
		name string
		spec rdma.DeviceSpec
		want error
	}{
		{"interface without device", rdma.DeviceSpec{Interface: "wlan0", GIDIndex: rdma.AutoGIDIndex}, rdma.ErrNoDevice},
		{"unknown device", rdma.DeviceSpec{Device: "mlx4_9", GIDIndex: 0}, rdma.ErrNoDevice},
		{"absent port", rdma.DeviceSpec{Device: "rxe0", Port: 2, GIDIndex: 0}, rdma.ErrNoDevice},
		{"empty gid row", rdma.DeviceSpec{Device: "rxe0", GIDIndex: 9}, rdma.ErrGIDNotFound},
		{"gid row past table", rdma.DeviceSpec{Device: "rxe0", GIDIndex: 900}, rdma.ErrGIDNotFound},
		{"no IPv4 address", rdma.DeviceSpec{Interface: "eth3", GIDIndex: rdma.AutoGIDIndex}, rdma.ErrGIDNotFound},
		{"only v1 matches", rdma.DeviceSpec{Interface: "eth1", Port: 1, GIDIndex: rdma.AutoGIDIndex}, rdma.ErrGIDNotFound},
	}
	for _, c := range cases {
		_, err := d.Discover(c.spec)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Discover(%+v) error = %v, want %v", c.name, c.spec, err, c.want)
		}
	}
	for _, spec := range []rdma.DeviceSpec{
		{GIDIndex: rdma.AutoGIDIndex},
		{Device: "rxe0", GIDIndex: rdma.AutoGIDIndex},
		{Interface: "eth0", GIDIndex: -2},
		{Interface: "eth0", Port: -1, GIDIndex: rdma.AutoGIDIndex},
	} {
		if _, err := d.Discover(spec); err == nil {
			t.Errorf("Discover(%+v) succeeded, want a field error", spec)
		}
	}

	empty := &Discovery{SysfsRoot: t.TempDir()}
	if _, err := empty.Devices(); !errors.Is(err, rdma.ErrNoDevice) || !errors.Is(err, rdma.ErrNotSupported) {
		t.Errorf("Devices on an empty tree: %v, want rdma.ErrNoDevice", err)
	}
	if _, err := empty.Discover(rdma.DeviceSpec{Interface: "eth0", GIDIndex: rdma.AutoGIDIndex}); !errors.Is(err, rdma.ErrNoDevice) {
		t.Errorf("Discover on an empty tree: %v, want rdma.ErrNoDevice", err)
	}
}

func TestDiscoverBadGIDFile(t *testing.T) {
	root := t.TempDir()
	writeSysfsFixture(t, root, map[string]map[int][]fixtureGID{
		"rxe0": {1: {{0, "not-a-gid", rdma.GIDTypeRoCEv2, "eth0"}}},
	}, 1)
	d := &Discovery{SysfsRoot: root}
	if _, err := d.GIDTable("rxe0", 1); err == nil {
		t.Fatal("GIDTable accepted a malformed GID file")
	}
	for _, s := range []string{"10.0.2.15", "fe80::1%eth0", ""} {
		if _, err := ParseGID(s); err == nil {
			t.Errorf("ParseGID(%q) succeeded", s)
		}
	}
	g, err := ParseGID("0000:0000:0000:0000:0000:ffff:0a00:020f")
	if err != nil || g != netip.MustParseAddr("::ffff:10.0.2.15").As16() {
		t.Errorf("ParseGID = %x, %v", g, err)
	}
}

// TestDiscoverRdmamapAgrees points rdmamap at a fixture tree and checks that
// the rdmamap-backed paths and Discovery's own reader list the same devices
// and ports.
func TestDiscoverRdmamapAgrees(t *testing.T) {
	root, addrs := rxeFixture(t)
	saved := rdmamap.RdmaClassDir
	rdmamap.RdmaClassDir = filepath.Join(root, "class", "infiniband")
	t.Cleanup(func() { rdmamap.RdmaClassDir = saved })

	viaMap := fixtureDiscovery(root, addrs)
	own := fixtureDiscovery(root, addrs)
	own.ownReader = true
	if !viaMap.usesRdmamap() || own.usesRdmamap() {
		t.Fatal("reader selection is wrong")
	}
	d1, err1 := viaMap.Devices()
	d2, err2 := own.Devices()
	if err1 != nil || err2 != nil || !slices.Equal(d1, d2) {
		t.Fatalf("Devices: rdmamap %v %v, own %v %v", d1, err1, d2, err2)
	}
	for _, dev := range d1 {
		p1, err1 := viaMap.Ports(dev)
		p2, err2 := own.Ports(dev)
		if err1 != nil || err2 != nil || !slices.Equal(p1, p2) {
			t.Errorf("Ports(%s): rdmamap %v %v, own %v %v", dev, p1, err1, p2, err2)
		}
	}
}

func TestIPv4AddrsLoopback(t *testing.T) {
	addrs, err := IPv4Addrs("lo")
	if err != nil {
		t.Fatalf("IPv4Addrs(lo): %v", err)
	}
	if !slices.Contains(addrs, netip.MustParseAddr("127.0.0.1")) {
		t.Fatalf("IPv4Addrs(lo) = %v, want 127.0.0.1 among them", addrs)
	}
	if _, err := IPv4Addrs("no-such-netdev0"); err == nil {
		t.Fatal("IPv4Addrs of a missing netdev succeeded")
	}
}

// discoverNeedDevice skips the test when there is no RDMA device, unless
// MU_REQUIRE_RDMA=1 says there must be one.
func discoverNeedDevice(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, rdma.ErrNoDevice) && os.Getenv("MU_REQUIRE_RDMA") != "1" {
		t.Skipf("no RDMA device (set MU_REQUIRE_RDMA=1 to fail instead): %v", err)
	}
	t.Fatal(err)
}

// TestDiscoverRealDevice runs on the host's own sysfs and netlink. By default
// it takes the first RDMA device and the first netdev it is bound to (rxe0 on
// eth0 in the Soft-RoCE VM) and must choose a RoCE v2 GID carrying one of that
// interface's IPv4 addresses. MU_RDMA_NETDEV, MU_RDMA_DEVICE and
// MU_RDMA_GID_INDEX pin the expectation (the VM's GID index is 1).
func TestDiscoverRealDevice(t *testing.T) {
	start := time.Now()
	step := func(what string) { t.Logf("%v %s", time.Since(start).Round(time.Millisecond), what) }
	d := &Discovery{}
	devs, err := d.Devices()
	discoverNeedDevice(t, err)
	step("devices")

	wantDev := discoverEnvOr("MU_RDMA_DEVICE", devs[0])
	netdev := os.Getenv("MU_RDMA_NETDEV")
	if netdev == "" {
		nds, err := d.NetdevsForDevice(wantDev)
		if err != nil || len(nds) == 0 {
			t.Fatalf("netdevs of %s: %v %v", wantDev, nds, err)
		}
		netdev = nds[0]
	}
	wantIdx := -1
	if v := os.Getenv("MU_RDMA_GID_INDEX"); v != "" {
		if wantIdx, err = strconv.Atoi(v); err != nil {
			t.Fatalf("MU_RDMA_GID_INDEX: %v", err)
		}
	}

	g, err := d.Discover(rdma.DeviceSpec{Interface: netdev, GIDIndex: rdma.AutoGIDIndex})
	if err != nil {
		t.Fatalf("Discover(%s): %v", netdev, err)
	}
	step(fmt.Sprintf("chosen: %v", g))
	if g.Device != wantDev || (wantIdx >= 0 && g.Index != wantIdx) || g.Type != rdma.GIDTypeRoCEv2 {
		t.Errorf("Discover(%s) = %v, want %s gid[%d] RoCE v2 (-1: any index)", netdev, g, wantDev, wantIdx)
	}

	// The GID must carry an address the standard library also sees on the
	// interface (independent of rtnetlink).
	ifc, err := net.InterfaceByName(netdev)
	if err != nil {
		t.Fatal(err)
	}
	ifAddrs, err := ifc.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	ip, _ := g.IPv4()
	found := false
	for _, a := range ifAddrs {
		if n, ok := a.(*net.IPNet); ok {
			if v, ok := netip.AddrFromSlice(n.IP.To4()); ok && v == ip {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("GID address %v is not among %s's addresses %v", ip, netdev, ifAddrs)
	}

	// rdmamap and the own reader must agree on the real tree.
	own := &Discovery{ownReader: true}
	if !d.usesRdmamap() {
		t.Fatal("default Discovery does not use rdmamap on /sys")
	}
	dm, err1 := d.DeviceForNetdev(netdev)
	step("rdmamap DeviceForNetdev")
	do, err2 := own.DeviceForNetdev(netdev)
	step("own DeviceForNetdev")
	if err1 != nil || err2 != nil || dm != do {
		t.Errorf("DeviceForNetdev(%s): rdmamap %q %v, own reader %q %v", netdev, dm, err1, do, err2)
	}
	nd, err := d.NetdevsForDevice(g.Device)
	step("NetdevsForDevice")
	if err != nil || !slices.Contains(nd, netdev) {
		t.Errorf("NetdevsForDevice(%s) = %v, %v; want %s among them", g.Device, nd, err, netdev)
	}
	g2, err := d.Discover(rdma.DeviceSpec{Device: g.Device, GIDIndex: g.Index})
	if err != nil || g2 != g {
		t.Errorf("explicit Discover(%s, %d) = %v, %v; want %v", g.Device, g.Index, g2, err, g)
	}
}

func discoverEnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
