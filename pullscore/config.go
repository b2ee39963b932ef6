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
	// ReadIntervalNs is the sampling period: every ReadIntervalNs the
	// detector posts one RDMA read of each peer's heartbeat area. A read
	// still outstanding at the next sample counts as a miss.
	ReadIntervalNs int64
	// BeatIntervalNs is the longest gap between two increments of the own
	// counter that the detector asks for (Step returns a wake-up no later
	// than this). The counter also moves on every Step call. It must be at
	// most half of ReadIntervalNs so that every peer's sampling window
	// contains at least one increment whatever the phase between the nodes.
	BeatIntervalNs int64
	// ScoreMax is the ceiling of a peer's score; the floor is 0.
	ScoreMax int
	// FailBelow: a live peer is declared failed when its score drops below
	// this value.
	FailBelow int
	// RecoverAbove: a failed peer is declared alive again only when its
	// score rises above this value. The gap [FailBelow, RecoverAbove] is
	// the hysteresis band that stops a flapping peer from flapping the
	// verdict.
	RecoverAbove int
	// ResetIntervalNs is the base gap between two Resets of the same
	// background connection found in ERROR (a Reset costs ~540 µs on rxe,
	// so it must not be retried at every sample while a peer is down). If the
	// connection breaks again within this time of its Reset, the gap
	// doubles, up to 64 times this.
	ResetIntervalNs int64
}

// DefaultConfig returns the settings of design §4: score 0..15, failed
// below 2, recovered above 6, one read per peer every 40 µs.
//
// Why 40 µs: an RDMA read takes ~22 µs on rxe (ib_read_lat, 64 B), so a
// healthy read returns before the next sample with ~18 µs to spare and a
// live peer is never scored down for ordinary jitter. A peer that stops
// beating at score 15 falls below 2 after 14 misses: 14 × 40 µs = 560 µs,
// plus at most one interval of sampling phase and one read latency for the
// other nodes' views (see Leader), about 620–680 µs: well under the 1 ms
// failover budget, with room left for the ~80 µs permission switch. A
// shorter interval would stack reads on rxe (latency ≈ interval); a longer
// one pushes detection past 1 ms.
func DefaultConfig() Config {
	return Config{
		ReadIntervalNs:  40_000,
		BeatIntervalNs:  10_000,
		ScoreMax:        15,
		FailBelow:       2,
		RecoverAbove:    6,
		ResetIntervalNs: 1_000_000,
	}
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
	case c.ResetIntervalNs < 0:
		return fmt.Errorf("pullscore: Config.ResetIntervalNs = %d: must not be negative: %w", c.ResetIntervalNs, ErrInvalidConfig)
	}
	return nil
}

// MissesToFail is how many consecutive misses take a peer at ScoreMax to
// failed.
func (c Config) MissesToFail() int { return c.ScoreMax - c.FailBelow + 1 }

// HitsToRecover is how many consecutive hits take a peer from the start
// score (FailBelow, failed) to alive.
func (c Config) HitsToRecover() int { return c.RecoverAbove - c.FailBelow + 1 }
