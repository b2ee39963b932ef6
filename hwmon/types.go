package hwmon

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rdmaconsensus/mu/hwmon/failslow"
)

// ErrUnavailable marks a signal that cannot be read on this machine.
// Collectors wrap it with the reason; callers test it with errors.Is.
var ErrUnavailable = errors.New("signal unavailable")

// ErrInvalidConfig is wrapped by every configuration validation error.
var ErrInvalidConfig = failslow.ErrInvalidConfig

// Verdict is the arbiter's decision for the local node.
type Verdict int

const (
	// Healthy: serve normally (advisory reasons may still be listed).
	Healthy Verdict = iota
	// Degraded: keep serving but do not prefer this node as leader.
	Degraded
	// Failed: fence at once: stop the heartbeat, give up leadership,
	// refuse proposals.
	Failed
)

// Enforcer is what a verdict acts on; consensus.Replica is one. Both
// methods must be safe from any goroutine.
type Enforcer interface {
	// Fence stops the node leading, applying and accepting proposals.
	Fence()
	// SetDegraded marks the node not preferred as leader (or clears it).
	SetDegraded(on bool)
}

// Apply carries out v on r: Failed fences it (heartbeat stopped, Fenced
// advertised, leadership given up, proposals refused); Degraded
// advertises Degraded, so a healthy live peer is preferred as leader while
// r keeps replicating; Healthy clears Degraded. A fence is not undone by a
// later verdict. Node wiring calls it with every Report.Verdict.
func (v Verdict) Apply(r Enforcer) {
	switch v {
	case Failed:
		r.Fence()
	case Degraded:
		r.SetDegraded(true)
	default:
		r.SetDegraded(false)
	}
}

func (v Verdict) String() string {
	switch v {
	case Healthy:
		return "Healthy"
	case Degraded:
		return "Degraded"
	case Failed:
		return "Failed"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Action is what the decision table asks for. Only ActionDegrade and
// ActionFence change the verdict; the others are advice for operators.
type Action int

const (
	ActionNone Action = iota
	ActionPlanDIMMReplacement
	ActionPlanDiskReplacement
	ActionCheckCabling
	ActionInspect
	ActionDegrade
	ActionFence
)

func (a Action) String() string {
	switch a {
	case ActionNone:
		return "none"
	case ActionPlanDIMMReplacement:
		return "plan DIMM replacement"
	case ActionPlanDiskReplacement:
		return "plan disk replacement"
	case ActionCheckCabling:
		return "check cabling"
	case ActionInspect:
		return "inspect disk/network"
	case ActionDegrade:
		return "degrade (not preferred as leader)"
	case ActionFence:
		return "fence (stop heartbeat, give up leadership, refuse proposals)"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Rows of the decision table (docs/decisions.md) and the advisory rows hwmon adds.
const (
	RowMemoryCE     = "memory CE rate"
	RowMemoryUE     = "memory UE"
	RowDiskP99      = "disk p99"
	RowReallocated  = "reallocated sectors"
	RowLinkSymbol   = "link symbol errors"
	RowProbeLatency = "probe latency"
	RowLogChecksum  = "log checksum failure"
	RowSMARTHealth  = "smart health"
	RowLinkFlap     = "link flaps"
	RowCPUThrottle  = "cpu throttling"
	RowFailSlowPeer = "fail-slow follower"
	RowCounterReset = "counter reset"
	RowNetdevErrors = "netdev errors"
)

// Reason explains one contribution to a Report.
type Reason struct {
	Row       string   // decision-table row, one of the Row* constants
	Severity  Severity // how far past its thresholds the row is
	Action    Action   // what the table asks for
	Subject   string   // which component: "mc0/dimm1", "nvme0n1", "mlx5_0/1", "peer 2"
	Value     float64  // observed value, in the unit of Unit
	Threshold float64  // the threshold that was crossed (0 for Info)
	Unit      string   // "errors/day", "x baseline", "ms", ...
	Detail    string   // one line for humans
}

func (r Reason) String() string {
	s := fmt.Sprintf("[%s] %s", r.Severity, r.Row)
	if r.Subject != "" {
		s += " (" + r.Subject + ")"
	}
	if r.Severity != Info && r.Unit != "" {
		s += fmt.Sprintf(": %.4g %s", r.Value, r.Unit)
		if r.Threshold > 0 || r.Row == RowMemoryUE || r.Row == RowLogChecksum {
			s += fmt.Sprintf(" > %.4g", r.Threshold)
		}
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	if r.Action != ActionNone {
		s += " -> " + r.Action.String()
	}
	return s
}

// SignalStatus says whether one signal could be read, and if not, why.
type SignalStatus struct {
	Name      string // "edac", "rasdaemon", "smart", "blockstat", "ebpf-blklat", "rdma", "netdev", "cpu-throttle", ...
	Source    string // path, database file or command the signal came from
	Available bool
	Reason    string // why unavailable (empty when available)
	Note      string // short summary of what was read
}

func (s SignalStatus) String() string {
	if !s.Available {
		return fmt.Sprintf("%s: signal unavailable: %s", s.Name, s.Reason)
	}
	if s.Note != "" {
		return s.Name + ": ok: " + s.Note
	}
	return s.Name + ": ok"
}

// unavailable builds the status of a signal that could not be read. The
// reason drops the sentinel's own text: renderers print "signal
// unavailable: <reason>" once.
func unavailable(name, source string, err error) SignalStatus {
	msg := strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": ")
	return SignalStatus{Name: name, Source: source, Reason: msg}
}

// Report is the arbiter's output for one Snapshot.
type Report struct {
	At      time.Time
	Verdict Verdict
	Reasons []Reason       // Failed/Degraded reasons first, then advisories, then info
	Signals []SignalStatus // one per signal source, available or not
	Disks   []DiskLatency  // per block device, what the disk row was judged on
}

// DiskLatency is the arbiter's view of one block device's latency.
type DiskLatency struct {
	Device       string
	ReadLatency  time.Duration // mean over the last interval (sysfs ticks / I/Os); 0 if no reads
	WriteLatency time.Duration // likewise for writes
	P99          time.Duration // over Thresholds.DiskWindow
	Baseline     time.Duration // 0 while learning
	Source       string        // "ebpf" (per-I/O histogram) or "sysfs" (per-interval means)
	Ratio        float64       // P99 / Baseline, 0 below the floor or while learning
	Level        Severity
}

// Unavailable returns the signals that could not be read.
func (r Report) Unavailable() []SignalStatus {
	var out []SignalStatus
	for _, s := range r.Signals {
		if !s.Available {
			out = append(out, s)
		}
	}
	return out
}
