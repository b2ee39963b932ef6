package hwmon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// smartctl exit status bits (smartctl(8), "RETURN VALUES").
const (
	smartExitCmdLine     = 1 << 0
	smartExitOpenFailed  = 1 << 1
	smartExitCommandFail = 1 << 2
	smartExitDiskFailing = 1 << 3
	smartExitPrefail     = 1 << 4
	smartExitPastThresh  = 1 << 5
	smartExitErrorLog    = 1 << 6
	smartExitSelfTestLog = 1 << 7
)

var smartExitBitNames = []string{
	"bit0: command line did not parse",
	"bit1: device open failed or device did not identify",
	"bit2: a SMART command failed or SMART data checksum error",
	"bit3: SMART status DISK FAILING",
	"bit4: prefail attributes at or below threshold",
	"bit5: attributes were at or below threshold in the past",
	"bit6: device error log has errors",
	"bit7: self-test log has errors",
}

// DecodeSmartctlExit names the bits set in smartctl's exit status.
func DecodeSmartctlExit(status int) []string {
	var out []string
	for i, name := range smartExitBitNames {
		if status&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// NVMe critical_warning bits (NVMe base spec, SMART / Health log byte 0).
const (
	nvmeWarnSpare       = 1 << 0
	nvmeWarnTemperature = 1 << 1
	nvmeWarnReliability = 1 << 2
	nvmeWarnReadOnly    = 1 << 3
	nvmeWarnVolatileBkp = 1 << 4
	nvmeWarnPMRReadOnly = 1 << 5
)

var nvmeWarnNames = []string{
	"available spare below threshold",
	"temperature outside threshold",
	"NVM subsystem reliability degraded",
	"media placed in read-only mode",
	"volatile memory backup failed",
	"persistent memory region read-only",
}

func decodeNVMeCriticalWarning(w uint64) []string {
	var out []string
	for i, name := range nvmeWarnNames {
		if w&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	if w>>len(nvmeWarnNames) != 0 {
		out = append(out, fmt.Sprintf("reserved bits 0x%x", w>>len(nvmeWarnNames)<<len(nvmeWarnNames)))
	}
	return out
}

// ATA attributes the arbiter reads.
var ataAttrNames = map[int]string{
	5:   "Reallocated_Sector_Ct",
	187: "Reported_Uncorrect",
	197: "Current_Pending_Sector",
	198: "Offline_Uncorrectable",
	199: "UDMA_CRC_Error_Count",
}

type smartctlJSON struct {
	Smartctl struct {
		ExitStatus *int `json:"exit_status"`
		Messages   []struct {
			String   string `json:"string"`
			Severity string `json:"severity"`
		} `json:"messages"`
	} `json:"smartctl"`
	Device struct {
		Name     string `json:"name"`
		Protocol string `json:"protocol"`
	} `json:"device"`
	ModelName    string `json:"model_name"`
	SerialNumber string `json:"serial_number"`
	SmartStatus  *struct {
		Passed *bool `json:"passed"`
	} `json:"smart_status"`
	ATASmartAttributes *struct {
		Table []struct {
			ID  int `json:"id"`
			Raw struct {
				Value uint64 `json:"value"`
			} `json:"raw"`
		} `json:"table"`
	} `json:"ata_smart_attributes"`
	NVMeLog *struct {
		CriticalWarning uint64 `json:"critical_warning"`
		Temperature     int64  `json:"temperature"`
		PercentageUsed  uint64 `json:"percentage_used"`
		MediaErrors     uint64 `json:"media_errors"`
	} `json:"nvme_smart_health_information_log"`
	Temperature *struct {
		Current *int64 `json:"current"`
	} `json:"temperature"`
}

// ParseSmartctlJSON decodes the output of `smartctl -j -a DEV`. exitStatus
// is the process's exit status (the JSON's own copy wins when present).
// Output that is not smartctl JSON, or a status saying the device could not
// be read, is an ErrUnavailable error naming the reason.
func ParseSmartctlJSON(device string, out []byte, exitStatus int) (SMARTDevice, error) {
	var j smartctlJSON
	if err := json.Unmarshal(out, &j); err != nil {
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if len(first) > 120 {
			first = first[:120] + "..."
		}
		return SMARTDevice{}, fmt.Errorf("%w: smartctl printed non-JSON for %s (exit status %d): %v; output starts %q",
			ErrUnavailable, device, exitStatus, err, first)
	}
	if j.Smartctl.ExitStatus != nil {
		exitStatus = *j.Smartctl.ExitStatus
	}
	d := SMARTDevice{
		Device:     device,
		Protocol:   j.Device.Protocol,
		Model:      j.ModelName,
		Serial:     j.SerialNumber,
		ExitStatus: exitStatus,
		ExitBits:   DecodeSmartctlExit(exitStatus),
	}
	if exitStatus&(smartExitCmdLine|smartExitOpenFailed) != 0 {
		var msgs []string
		for _, m := range j.Smartctl.Messages {
			msgs = append(msgs, m.String)
		}
		return d, fmt.Errorf("%w: smartctl could not read %s (exit status %d: %s): %s",
			ErrUnavailable, device, exitStatus, strings.Join(d.ExitBits, "; "), strings.Join(msgs, "; "))
	}
	if j.SmartStatus != nil {
		d.Passed = j.SmartStatus.Passed
	}
	if j.ATASmartAttributes != nil {
		d.ATA = map[int]uint64{}
		for _, a := range j.ATASmartAttributes.Table {
			if _, ok := ataAttrNames[a.ID]; ok {
				d.ATA[a.ID] = a.Raw.Value
			}
		}
	}
	if n := j.NVMeLog; n != nil {
		d.NVMe = &NVMeHealth{CriticalWarning: n.CriticalWarning, MediaErrors: n.MediaErrors,
			PercentageUsed: n.PercentageUsed, TemperatureC: n.Temperature}
	}
	if j.Temperature != nil && j.Temperature.Current != nil {
		d.TemperatureC = j.Temperature.Current
	} else if d.NVMe != nil {
		t := d.NVMe.TemperatureC
		d.TemperatureC = &t
	}
	if d.ATA == nil && d.NVMe == nil && d.Passed == nil {
		return d, fmt.Errorf("%w: smartctl JSON for %s has no SMART data (exit status %d)", ErrUnavailable, device, exitStatus)
	}
	return d, nil
}

// SMARTCollector runs smartctl on each device.
type SMARTCollector struct {
	SmartctlPath string
	Devices      []string // empty: discover under SysfsRoot/block
	SysfsRoot    string
	Timeout      time.Duration
	// Interval > 0 makes Collect reuse the previous answer while younger
	// than Interval (smartctl is slow and may wake sleeping disks).
	Interval time.Duration

	lastAt      time.Time
	lastDevices []SMARTDevice
	lastSignals []SignalStatus
}

func (c *SMARTCollector) Name() string { return "smart" }

// smartSkipPrefixes are block devices with no SMART data of their own.
var smartSkipPrefixes = []string{"loop", "ram", "zram", "dm-", "md", "sr", "nbd", "fd"}

func discoverSmartDevices(sysfsRoot string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(sysfsRoot, "block"))
	if err != nil {
		return nil, err
	}
	var out []string
next:
	for _, e := range ents {
		for _, p := range smartSkipPrefixes {
			if strings.HasPrefix(e.Name(), p) {
				continue next
			}
		}
		out = append(out, "/dev/"+e.Name())
	}
	sort.Strings(out)
	return out, nil
}

func (c *SMARTCollector) Collect(ctx context.Context, s *Snapshot) {
	if c.Interval > 0 && !c.lastAt.IsZero() && s.At.Sub(c.lastAt) < c.Interval {
		s.SMART = append(s.SMART, c.lastDevices...)
		s.Signals = append(s.Signals, c.lastSignals...)
		return
	}
	devs, sigs := c.collect(ctx)
	c.lastAt, c.lastDevices, c.lastSignals = s.At, devs, sigs
	s.SMART = append(s.SMART, devs...)
	s.Signals = append(s.Signals, sigs...)
}

func (c *SMARTCollector) collect(ctx context.Context) ([]SMARTDevice, []SignalStatus) {
	bin, err := exec.LookPath(c.SmartctlPath)
	if err != nil {
		return nil, []SignalStatus{unavailable("smart", c.SmartctlPath, fmt.Errorf("smartctl not found (%v); install smartmontools", err))}
	}
	devices := c.Devices
	if len(devices) == 0 {
		devices, err = discoverSmartDevices(c.SysfsRoot)
		if err != nil {
			return nil, []SignalStatus{unavailable("smart", c.SysfsRoot+"/block", fmt.Errorf("cannot list block devices: %v", err))}
		}
		if len(devices) == 0 {
			return nil, []SignalStatus{unavailable("smart", c.SysfsRoot+"/block", errors.New("no block device that carries SMART data"))}
		}
	}
	var out []SMARTDevice
	var sigs []SignalStatus
	for _, dev := range devices {
		name := "smart " + dev
		d, err := c.runOne(ctx, bin, dev)
		if err != nil {
			sigs = append(sigs, unavailable(name, bin+" -j -a "+dev, err))
			continue
		}
		out = append(out, d)
		note := d.Protocol
		if d.Model != "" {
			note += " " + d.Model
		}
		if len(d.ExitBits) > 0 {
			note += "; exit status " + strings.Join(d.ExitBits, "; ")
		}
		sigs = append(sigs, SignalStatus{Name: name, Source: bin + " -j -a " + dev, Available: true, Note: note})
	}
	return out, sigs
}

func (c *SMARTCollector) runOne(ctx context.Context, bin, dev string) (SMARTDevice, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-j", "-a", dev)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	status := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return SMARTDevice{}, fmt.Errorf("%w: smartctl on %s did not finish within %v", ErrUnavailable, dev, c.Timeout)
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		status = ee.ExitCode()
	default:
		return SMARTDevice{}, fmt.Errorf("%w: running smartctl on %s: %v", ErrUnavailable, dev, err)
	}
	if stdout.Len() == 0 && stderr.Len() > 0 {
		stdout = stderr
	}
	return ParseSmartctlJSON(dev, stdout.Bytes(), status)
}
