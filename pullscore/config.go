package pullscore

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig is wrapped by every error Config.Validate and NewDetector
// return for a bad setting.
var ErrInvalidConfig = errors.New("pullscore: invalid configuration")

// Config tunes the detector. All durations are in nanoseconds of the clock
// that drives Step.
type Config struct {
	// ReadIntervalNs is the shortest sampling period, and the period
	// before the first round trips are measured: every period the
	// detector posts one RDMA read of each peer's heartbeat area. A read
	// still outstanding at the next sample counts as a miss. The period in
	// use is the measured heartbeat-read round trip plus 2 mean deviations,
	// within [ReadIntervalNs,
	// MaxReadIntervalNs], so that an ordinary read returns before the
	// next sample.
	ReadIntervalNs int64
	// MaxReadIntervalNs caps the measured period. At most ReadIntervalNs
	// (0 included) fixes the period at ReadIntervalNs.
	MaxReadIntervalNs int64
	// BeatIntervalNs is the longest gap between two increments of the own
	// counter that the detector asks for (Step returns a wake-up no later
	// than this). The counter also moves on every Step call. It must be at
	// most half of ReadIntervalNs so that every peer's sampling window
	// contains at least one increment whatever the phase between the nodes.
	BeatIntervalNs int64
	// ScoreMax is the ceiling of a peer's score; the floor is 0.
	ScoreMax int
	// UpStep and DownStep are what a sample adds to a peer's score when
	// its counter moved, and takes away when it did not. DownStep 0 derives
	// the score from time instead (stale.go): a live peer's score falls
	// with its staleness, the time since its last fresh beat on this
	// node's clock less the time this node itself was descheduled, from
	// ScoreMax to below FailBelow at the measured failure bound, and a
	// fresh beat restores it; a failed peer regains one point per sampling
	// interval with a fresh beat and loses one per interval without, so
	// recovery stays hysteretic. UpStep 0 means 1.
	UpStep, DownStep int
	// FailBelow: a live peer is declared failed when its score drops below
	// this value.
	FailBelow int
	// RecoverAbove: a failed peer is declared alive again only when its
	// score rises above this value. The gap [FailBelow, RecoverAbove] is
	// the hysteresis band that stops a flapping peer from flapping the
	// verdict.
	RecoverAbove int
	// FailBoundNs is the shortest staleness at which a peer is declared
	// failed, and MaxFailBoundNs the longest (both only with DownStep 0).
	// The bound in use is a quarter more than the larger of the
	// staleness live peers reached before a fresh beat that only one gap
	// in SuspicionGaps exceeded (the last ~65 000 gaps, every peer
	// pooled) and the envelope of the largest such gaps (it forgets
	// slowly: the hysteresis); and at least half as much again as this
	// node's own longest gap between Steps plus a period (a host, or a
	// Step's own work such as an access-flag change, that stalls this
	// node stalls its peers as long). Until 256 gaps are measured it is
	// three times the largest. On dedicated cores
	// it is a few periods; on a host that deschedules the nodes it grows
	// to cover their stalls. One observer's verdict moves no leadership
	// by itself: Leader needs a majority to see the leader failed (the
	// second opinion).
	FailBoundNs    int64
	MaxFailBoundNs int64
	// SuspicionGaps: the failure bound is exceeded by one gap in this many
	// among live peers, so one observer wrongly suspects a live peer about
	// once per SuspicionGaps samples of it; a leader change needs a
	// majority to do so at once. 0 means 1024.
	SuspicionGaps int
	// PushBeats: every period (and on a change of the own view) the own
	// heartbeat is also written into each peer's inbox, unsignaled, so a
	// peer has a second source of fresh beats that does not queue behind
	// its own reads (Mu's detector only reads).
	PushBeats bool
	// ResetIntervalNs is the base gap between two Resets of the same
	// background connection found in ERROR (a Reset costs ~540 µs on rxe,
	// so it must not be retried at every sample while a peer is down). If the
	// connection breaks again within this time of its Reset, the gap
	// doubles, up to 64 times this.
	ResetIntervalNs int64
}

// DefaultConfig returns the score of design §4 (0..15, failed below 2,
// recovered above 6) with the period and the failure bound measured.
//
// Why these limits: an RDMA read takes ~22 µs on rxe (ib_read_lat, 64 B),
// so the period settles near 25–30 µs there and never goes below 25 µs
// (shorter would make ordinary reads late: latency ≈ period). The failure
// bound never goes below 60 µs (a read in rxe's 1% tail must not fail a
// peer alone) and never above 1 s: a loaded 2-core host was measured
// descheduling a node for up to ~0.5 s, and a bound under its stalls
// moves the leadership on every one. The period stretches to bound/14
// (sampling faster than the bound needs only costs CPU), up to 4 ms.
func DefaultConfig() Config {
	return Config{
		ReadIntervalNs:    25_000,
		MaxReadIntervalNs: 4_000_000,
		BeatIntervalNs:    10_000,
		ScoreMax:          15,
		FailBelow:         2,
		RecoverAbove:      6,
		FailBoundNs:       60_000,
		MaxFailBoundNs:    1_000_000_000,
		PushBeats:         true,
		ResetIntervalNs:   1_000_000,
	}
}

// MuConfig returns Mu's own detector (OSDI 2020, §4) for comparison on the
// same fabric: score capped at 7, +3 per fresh beat and -1 per miss, failed
// below 2, recovered above 6, a fixed 40 µs period.
func MuConfig() Config {
	return Config{
		ReadIntervalNs:  40_000,
		BeatIntervalNs:  10_000,
		ScoreMax:        7,
		FailBelow:       2,
		RecoverAbove:    6,
		UpStep:          3,
		DownStep:        1,
		ResetIntervalNs: 1_000_000,
	}
}

// Adaptive reports whether the steps are derived from the measured
// failure bound (DownStep 0).
func (c Config) Adaptive() bool { return c.DownStep == 0 }

// maxPeriodNs is the cap of the measured period.
func (c Config) maxPeriodNs() int64 { return max(c.MaxReadIntervalNs, c.ReadIntervalNs) }

// suspicionGaps is SuspicionGaps with 0 meaning the default.
func (c Config) suspicionGaps() int {
	if c.SuspicionGaps == 0 {
		return 1024
	}
	return c.SuspicionGaps
}

// MaxScore is the largest ScoreMax Validate accepts.
const MaxScore = 255

// Validate checks each field and the rules between them, naming the field
// and the rule that fails.
func (c Config) Validate() error {
	switch {
	case c.ReadIntervalNs <= 0:
		return fmt.Errorf("pullscore: Config.ReadIntervalNs = %d: must be positive: %w", c.ReadIntervalNs, ErrInvalidConfig)
	case c.BeatIntervalNs <= 0:
		return fmt.Errorf("pullscore: Config.BeatIntervalNs = %d: must be positive: %w", c.BeatIntervalNs, ErrInvalidConfig)
	case c.BeatIntervalNs*2 > c.ReadIntervalNs:
		return fmt.Errorf("pullscore: Config.BeatIntervalNs = %d: must be at most half of ReadIntervalNs (%d) so every sample window holds a beat: %w",
			c.BeatIntervalNs, c.ReadIntervalNs, ErrInvalidConfig)
	case c.ScoreMax < 1 || c.ScoreMax > MaxScore:
		return fmt.Errorf("pullscore: Config.ScoreMax = %d: must be in 1..%d: %w", c.ScoreMax, MaxScore, ErrInvalidConfig)
	case c.FailBelow < 1:
		return fmt.Errorf("pullscore: Config.FailBelow = %d: must be at least 1 (the score never goes below 0): %w", c.FailBelow, ErrInvalidConfig)
	case c.RecoverAbove < c.FailBelow:
		return fmt.Errorf("pullscore: Config.RecoverAbove = %d: must be at least FailBelow (%d), or there is no hysteresis band: %w",
			c.RecoverAbove, c.FailBelow, ErrInvalidConfig)
	case c.RecoverAbove >= c.ScoreMax:
		return fmt.Errorf("pullscore: Config.RecoverAbove = %d: must be below ScoreMax (%d), or a failed peer never recovers: %w",
			c.RecoverAbove, c.ScoreMax, ErrInvalidConfig)
	case c.MaxReadIntervalNs < 0:
		return fmt.Errorf("pullscore: Config.MaxReadIntervalNs = %d: must not be negative: %w", c.MaxReadIntervalNs, ErrInvalidConfig)
	case c.UpStep < 0 || c.UpStep > c.ScoreMax:
		return fmt.Errorf("pullscore: Config.UpStep = %d: must be in 0..ScoreMax (%d): %w", c.UpStep, c.ScoreMax, ErrInvalidConfig)
	case c.DownStep < 0 || c.DownStep > c.ScoreMax:
		return fmt.Errorf("pullscore: Config.DownStep = %d: must be in 0..ScoreMax (%d): %w", c.DownStep, c.ScoreMax, ErrInvalidConfig)
	case c.Adaptive() && c.FailBoundNs <= 0:
		return fmt.Errorf("pullscore: Config.FailBoundNs = %d: must be positive when DownStep is 0 (derived): %w", c.FailBoundNs, ErrInvalidConfig)
	case c.Adaptive() && c.MaxFailBoundNs < c.FailBoundNs:
		return fmt.Errorf("pullscore: Config.MaxFailBoundNs = %d: must be at least FailBoundNs (%d): %w", c.MaxFailBoundNs, c.FailBoundNs, ErrInvalidConfig)
	case c.SuspicionGaps < 0:
		return fmt.Errorf("pullscore: Config.SuspicionGaps = %d: must not be negative (0 means 1024): %w", c.SuspicionGaps, ErrInvalidConfig)
	case c.ResetIntervalNs < 0:
		return fmt.Errorf("pullscore: Config.ResetIntervalNs = %d: must not be negative: %w", c.ResetIntervalNs, ErrInvalidConfig)
	}
	return nil
}

// MissesToFail is how many consecutive misses take a peer at ScoreMax to
// failed with DownStep (1 when derived: the most it can take).
func (c Config) MissesToFail() int { return ceilDiv(c.ScoreMax-c.FailBelow+1, max(c.DownStep, 1)) }

// HitsToRecover is how many consecutive hits take a peer from the start
// score (FailBelow, failed) to alive.
func (c Config) HitsToRecover() int { return ceilDiv(c.RecoverAbove-c.FailBelow+1, c.upStep()) }

// upStep is UpStep with 0 meaning 1.
func (c Config) upStep() int { return max(c.UpStep, 1) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }
