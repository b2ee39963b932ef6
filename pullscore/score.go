package pullscore

// Score is one peer's pull-score with hysteresis: a value in 0..ScoreMax
// that moves by a step per observation, and a verdict that changes to failed
// only when the value drops below FailBelow and back to alive only when it
// rises above RecoverAbove. It is a pure value type, driven by Observe.
type Score struct {
	value        int
	max          int
	failBelow    int
	recoverAbove int
	alive        bool
}

// NewScore returns a score at value with the given verdict, clamped to
// 0..cfg.ScoreMax. cfg must be valid.
func NewScore(cfg Config, value int, alive bool) Score {
	s := Score{max: cfg.ScoreMax, failBelow: cfg.FailBelow, recoverAbove: cfg.RecoverAbove, alive: alive}
	s.value = min(max(value, 0), s.max)
	return s
}

// Observe records one sample: moved is true when the peer's counter moved
// since the previous successful read, false for a stalled counter, a failed
// read or a read not returned by the next sample. It reports whether the
// verdict changed.
func (s *Score) Observe(moved bool) (verdictChanged bool) { return s.ObserveStep(moved, 1, 1) }

// ObserveStep is Observe with the steps given: up is added when moved,
// down taken away otherwise, clamped to 0..ScoreMax.
func (s *Score) ObserveStep(moved bool, up, down int) (verdictChanged bool) {
	if moved {
		s.value = min(s.value+up, s.max)
	} else {
		s.value = max(s.value-down, 0)
	}
	switch {
	case s.alive && s.value < s.failBelow:
		s.alive = false
		return true
	case !s.alive && s.value > s.recoverAbove:
		s.alive = true
		return true
	}
	return false
}

// Value is the current score.
func (s Score) Value() int { return s.value }

// Alive is the current verdict.
func (s Score) Alive() bool { return s.alive }
