package hwmon

import "github.com/rdmaconsensus/mu/hwmon/failslow"

// The layer-2 fail-slow tracker lives in package failslow, which the
// replication core imports without the collectors; these names keep it
// part of hwmon's API.
type (
	// FailSlowConfig sets the layer-2 detector (see failslow.Config).
	FailSlowConfig = failslow.Config
	// PeerStatus is one follower's fail-slow state.
	PeerStatus = failslow.PeerStatus
	// FailSlow tracks per-follower completion latency (see failslow.Tracker).
	FailSlow = failslow.Tracker
	// ProbeSummary is FailSlow's view at snapshot time.
	ProbeSummary = failslow.ProbeSummary
	// Severity grades a reason.
	Severity = failslow.Severity
)

// Severities.
const (
	Info     = failslow.Info
	Warn     = failslow.Warn
	Critical = failslow.Critical
)

// DefaultFailSlowConfig: 5x warn, 10x critical.
func DefaultFailSlowConfig() FailSlowConfig { return failslow.DefaultConfig() }

// NewFailSlow validates cfg and returns an empty tracker.
func NewFailSlow(cfg FailSlowConfig) (*FailSlow, error) { return failslow.New(cfg) }

func levelFor(prev Severity, value, warn, critical float64, hasWarn bool, clearRatio float64) Severity {
	return failslow.LevelFor(prev, value, warn, critical, hasWarn, clearRatio)
}
