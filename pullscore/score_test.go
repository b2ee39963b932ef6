package pullscore

import (
	"errors"
	"strings"
	"testing"
)

// run feeds a pattern of observations ('+' moved, '-' not) and returns the
// values and verdicts after each.
func run(s *Score, pattern string) (values []int, alive []bool) {
	for _, c := range pattern {
		s.Observe(c == '+')
		values = append(values, s.Value())
		alive = append(alive, s.Alive())
	}
	return values, alive
}

func TestScoreHysteresis(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		name      string
		start     int
		alive     bool
		pattern   string
		wantValue int
		wantAlive bool
		// wantFlipAt is the 1-based observation at which the verdict
		// first changes, 0 for never.
		wantFlipAt int
	}{
		{"full score fails after exactly 14 misses", 15, true, strings.Repeat("-", 14), 1, false, 14},
		{"13 misses from full are not enough", 15, true, strings.Repeat("-", 13), 2, true, 0},
		{"floor is 0", 15, true, strings.Repeat("-", 30), 0, false, 14},
		{"ceiling is ScoreMax", 10, true, strings.Repeat("+", 30), 15, true, 0},
		{"failed recovers only above 6", 2, false, "+++++", 7, true, 5},
		{"failed at 6 is still failed", 2, false, "++++", 6, false, 0},
		{"from 0 recovery needs 7 hits", 0, false, strings.Repeat("+", 7), 7, true, 7},
		{"oscillating in the band does not flap (alive)", 4, true, "+-+-+-+-+-", 4, true, 0},
		{"oscillating in the band does not flap (failed)", 4, false, "+-+-+-+-+-", 4, false, 0},
		{"alternating around the fail line flips once", 2, true, "-+-+-+", 2, false, 1},
		{"half misses from full never fail", 15, true, strings.Repeat("-+", 50), 15, true, 0},
		{"a recovered peer drops again only below 2", 2, false, "+++++" + strings.Repeat("-", 5), 2, true, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewScore(cfg, tt.start, tt.alive)
			flipAt := 0
			prev := s.Alive()
			for i, c := range tt.pattern {
				changed := s.Observe(c == '+')
				if changed != (s.Alive() != prev) {
					t.Fatalf("observation %d: Observe reported changed=%v but verdict went %v -> %v", i+1, changed, prev, s.Alive())
				}
				if changed && flipAt == 0 {
					flipAt = i + 1
				}
				prev = s.Alive()
			}
			if s.Value() != tt.wantValue || s.Alive() != tt.wantAlive || flipAt != tt.wantFlipAt {
				t.Fatalf("got value %d alive %v first flip at %d, want %d %v %d",
					s.Value(), s.Alive(), flipAt, tt.wantValue, tt.wantAlive, tt.wantFlipAt)
			}
		})
	}
}

// TestScoreVerdictMatchesNaive compares Score with a direct restatement of
// the rule over random patterns.
func TestScoreVerdictMatchesNaive(t *testing.T) {
	cfg := DefaultConfig()
	x := uint64(0x9e3779b97f4a7c15)
	for trial := 0; trial < 200; trial++ {
		s := NewScore(cfg, 15, true)
		value, alive := 15, true
		for i := 0; i < 200; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			moved := x%3 != 0 || trial%2 == 0 && x%5 == 0
			s.Observe(moved)
			if moved {
				value = min(value+1, cfg.ScoreMax)
			} else {
				value = max(value-1, 0)
			}
			if value < cfg.FailBelow {
				alive = false
			}
			if value > cfg.RecoverAbove {
				alive = true
			}
			if s.Value() != value || s.Alive() != alive {
				t.Fatalf("trial %d step %d: got %d/%v want %d/%v", trial, i, s.Value(), s.Alive(), value, alive)
			}
		}
	}
}

func TestNewScoreClamps(t *testing.T) {
	cfg := DefaultConfig()
	if v := NewScore(cfg, 99, true).Value(); v != cfg.ScoreMax {
		t.Fatalf("NewScore(99) = %d, want %d", v, cfg.ScoreMax)
	}
	if v := NewScore(cfg, -3, false).Value(); v != 0 {
		t.Fatalf("NewScore(-3) = %d, want 0", v)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := []struct {
		field string
		edit  func(*Config)
	}{
		{"ReadIntervalNs", func(c *Config) { c.ReadIntervalNs = 0 }},
		{"BeatIntervalNs", func(c *Config) { c.BeatIntervalNs = -1 }},
		{"BeatIntervalNs", func(c *Config) { c.BeatIntervalNs = c.ReadIntervalNs/2 + 1 }},
		{"ScoreMax", func(c *Config) { c.ScoreMax = 0 }},
		{"ScoreMax", func(c *Config) { c.ScoreMax = MaxScore + 1 }},
		{"FailBelow", func(c *Config) { c.FailBelow = 0 }},
		{"RecoverAbove", func(c *Config) { c.RecoverAbove = 1 }},
		{"RecoverAbove", func(c *Config) { c.RecoverAbove = c.ScoreMax }},
		{"ResetIntervalNs", func(c *Config) { c.ResetIntervalNs = -1 }},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Config."+tt.field) {
			t.Errorf("%+v: got %v, want an ErrInvalidConfig naming Config.%s", c, err, tt.field)
		}
	}
}

func TestDefaultDetectionBoundUnderOneMillisecond(t *testing.T) {
	c := DefaultConfig()
	// Misses to fail, plus one interval of phase, plus one more interval
	// and a read (~22 µs on rxe) for the other nodes' views to follow.
	boundNs := int64(c.MissesToFail()+2)*c.ReadIntervalNs + 2*22_000
	if c.MissesToFail() != 14 || boundNs >= 1_000_000 {
		t.Fatalf("misses to fail %d, bound %d ns: want 14 and under 1 ms", c.MissesToFail(), boundNs)
	}
}
