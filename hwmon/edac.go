package hwmon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// EDACCollector reads ECC counters from SysfsRoot/devices/system/edac/mc.
type EDACCollector struct {
	SysfsRoot string
}

func (c *EDACCollector) Name() string { return "edac" }

func (c *EDACCollector) Collect(_ context.Context, s *Snapshot) {
	dir := filepath.Join(c.SysfsRoot, "devices/system/edac/mc")
	mcs, err := ReadEDAC(dir)
	if err != nil {
		s.Signals = append(s.Signals, unavailable("edac", dir, err))
		return
	}
	s.EDAC = append(s.EDAC, mcs...)
	var ce, ue uint64
	dimms := 0
	for _, mc := range mcs {
		ce += mc.CECount + mc.CENoInfo
		ue += mc.UECount + mc.UENoInfo
		dimms += len(mc.DIMMs)
	}
	s.Signals = append(s.Signals, SignalStatus{Name: "edac", Source: dir, Available: true,
		Note: fmt.Sprintf("%d controllers, %d DIMMs, CE %d, UE %d since boot", len(mcs), dimms, ce, ue)})
}

// ReadEDAC reads every mcN under dir. A missing tree, a tree with no
// controllers, or an unreadable counter is an ErrUnavailable error: a
// counter we cannot read must not look like zero errors.
func ReadEDAC(dir string) ([]EDACController, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist (no EDAC driver loaded: no ECC memory, or a VM/container)", ErrUnavailable, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var out []EDACController
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "mc") || len(e.Name()) == 2 {
			continue
		}
		mc, err := readEDACController(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		out = append(out, mc)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s has no memory controllers (EDAC loaded but no ECC controller registered)", ErrUnavailable, dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readEDACController(dir string) (EDACController, error) {
	mc := EDACController{Name: filepath.Base(dir)}
	for _, f := range []struct {
		file     string
		dst      *uint64
		optional bool
	}{
		{"ce_count", &mc.CECount, false},
		{"ue_count", &mc.UECount, false},
		{"ce_noinfo_count", &mc.CENoInfo, true},
		{"ue_noinfo_count", &mc.UENoInfo, true},
	} {
		v, err := readUint(filepath.Join(dir, f.file))
		if f.optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return mc, err
		}
		*f.dst = v
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return mc, err
	}
	for _, e := range ents {
		n := e.Name()
		if !(strings.HasPrefix(n, "dimm") || strings.HasPrefix(n, "rank")) || !e.IsDir() {
			continue
		}
		d := EDACDIMM{Name: n}
		dd := filepath.Join(dir, n)
		if d.CECount, err = readUint(filepath.Join(dd, "dimm_ce_count")); err != nil {
			return mc, err
		}
		if d.UECount, err = readUint(filepath.Join(dd, "dimm_ue_count")); err != nil {
			return mc, err
		}
		d.Label, _ = readString(filepath.Join(dd, "dimm_label")) // labels are cosmetic
		mc.DIMMs = append(mc.DIMMs, d)
	}
	sort.Slice(mc.DIMMs, func(i, j int) bool { return mc.DIMMs[i].Name < mc.DIMMs[j].Name })
	return mc, nil
}
