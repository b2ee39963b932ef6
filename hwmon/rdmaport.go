package hwmon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/Mellanox/rdmamap"
)

// RDMACollector reads port state and counters of every RDMA device under
// SysfsRoot/class/infiniband. Discovery on the real /sys goes through
// rdmamap; the counter files are read here because rdmamap turns a read
// error into 0, and an unreadable error counter must not look clean.
type RDMACollector struct {
	SysfsRoot string
}

func (c *RDMACollector) Name() string { return "rdma" }

func (c *RDMACollector) Collect(_ context.Context, s *Snapshot) {
	dir := filepath.Join(c.SysfsRoot, "class/infiniband")
	ports, err := ReadRDMAPorts(c.SysfsRoot)
	if err != nil {
		s.Signals = append(s.Signals, unavailable("rdma", dir, err))
		return
	}
	s.RDMAPorts = append(s.RDMAPorts, ports...)
	var parts []string
	for _, p := range ports {
		part := fmt.Sprintf("%s/%d %s", p.Device, p.Port, p.State)
		if p.Netdev != "" {
			part += " on " + p.Netdev
		}
		if len(p.ReadErrors) > 0 {
			part += fmt.Sprintf(" (%d counters unreadable)", len(p.ReadErrors))
		}
		parts = append(parts, part)
	}
	s.Signals = append(s.Signals, SignalStatus{Name: "rdma", Source: dir, Available: true, Note: strings.Join(parts, "; ")})
}

func listDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

// ReadRDMAPorts reads every port of every device under sysfsRoot.
func ReadRDMAPorts(sysfsRoot string) ([]RDMAPort, error) {
	dir := filepath.Join(sysfsRoot, "class/infiniband")
	var devices []string
	var err error
	if filepath.Clean(sysfsRoot) == "/sys" {
		devices = rdmamap.GetRdmaDeviceList()
	} else {
		devices, err = listDirs(dir)
	}
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(devices) == 0) {
		if _, statErr := os.Stat(dir); errors.Is(statErr, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist (no RDMA device; no ib_core, or a container without RDMA)", ErrUnavailable, dir)
		}
		return nil, fmt.Errorf("%w: no RDMA device under %s", ErrUnavailable, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	sort.Strings(devices)
	var out []RDMAPort
	for _, dev := range devices {
		var ports []string
		if filepath.Clean(sysfsRoot) == "/sys" {
			ports = rdmamap.GetPorts(dev)
		} else if ports, err = listDirs(filepath.Join(dir, dev, "ports")); err != nil {
			return nil, fmt.Errorf("%w: listing ports of %s: %v", ErrUnavailable, dev, err)
		}
		for _, ps := range ports {
			n, err := strconv.Atoi(ps)
			if err != nil {
				continue
			}
			out = append(out, readRDMAPort(filepath.Join(dir, dev, "ports", ps), dev, n))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: RDMA devices %v have no ports", ErrUnavailable, devices)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Device != out[j].Device {
			return out[i].Device < out[j].Device
		}
		return out[i].Port < out[j].Port
	})
	return out, nil
}

func readRDMAPort(dir, dev string, port int) RDMAPort {
	p := RDMAPort{Device: dev, Port: port, Counters: map[string]uint64{}, HWCounters: map[string]uint64{}, ReadErrors: map[string]string{}}
	p.State, _ = readString(filepath.Join(dir, "state"))
	p.PhysState, _ = readString(filepath.Join(dir, "phys_state"))
	p.LinkLayer, _ = readString(filepath.Join(dir, "link_layer"))
	p.Netdev, _ = readString(filepath.Join(dir, "gid_attrs/ndevs/0"))
	readCounterDir(filepath.Join(dir, "counters"), "", p.Counters, p.ReadErrors)
	readCounterDir(filepath.Join(dir, "hw_counters"), "hw_counters/", p.HWCounters, p.ReadErrors)
	return p
}

func readCounterDir(dir, prefix string, dst map[string]uint64, errs map[string]string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return // a port without hw_counters is normal
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		v, err := readUint(filepath.Join(dir, e.Name()))
		if err != nil {
			errs[prefix+e.Name()] = err.Error()
			continue
		}
		dst[e.Name()] = v
	}
}
