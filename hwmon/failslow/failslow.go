// Package failslow judges latency against each peer's own baseline
// (Perseus's slowdown ratio) and grades it: the fail-slow tracker the
// replication core feeds, the severities the hardware arbiter uses. It is
// pure and light (no collectors, no I/O) so the core can import it; package
// hwmon re-exports its types.
package failslow

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Config sets the layer-2 detector: a follower whose probe
// completion p99 exceeds WarnRatio (CriticalRatio) times its own baseline
// p99 is fail-slow. The ratio is Perseus's slowdown ratio, taken against the
// follower's own history rather than against its peers, so a follower that
// is always farther away is not punished for distance.
type Config struct {
	WarnRatio     float64
	CriticalRatio float64
	// Window is how far back the current p99 looks; it is kept as
	// WindowSlots rotating histograms so old samples age out in steps.
	Window      time.Duration
	WindowSlots int
	// BaselineSamples: the baseline p99 is taken over a follower's first
	// this many observations, then frozen until ResetBaseline.
	BaselineSamples int
	// MinSamples: fewer observations in the window are not judged.
	MinSamples int64
	// LatencyFloorNs: a p99 below this is never flagged, whatever the ratio.
	LatencyFloorNs int64
	// MaxLatencyNs is the largest latency the histograms track; larger
	// observations are clamped to it (they are slow either way).
	MaxLatencyNs int64
	// HysteresisClearRatio as in Thresholds.
	HysteresisClearRatio float64
	// SignificantFigures is the histograms' precision (1..5; 0 means 3).
	// Memory grows tenfold per figure: 3 costs ~200 KB per histogram over
	// 1 ns..10 s, 2 about 30 KB, and 1% is plenty for a 5x ratio.
	SignificantFigures int
}

// DefaultConfig: 5x warn, 10x critical.
func DefaultConfig() Config {
	return Config{
		WarnRatio:            5,
		CriticalRatio:        10,
		Window:               10 * time.Second,
		WindowSlots:          5,
		BaselineSamples:      200,
		MinSamples:           20,
		LatencyFloorNs:       0,
		MaxLatencyNs:         int64(10 * time.Second),
		HysteresisClearRatio: 0.8,
		SignificantFigures:   3,
	}
}

// Validate says which field is wrong and why.
func (c Config) Validate() error {
	bad := func(field, why string, args ...any) error {
		return fmt.Errorf("%w: FailSlow.%s %s", ErrInvalidConfig, field, fmt.Sprintf(why, args...))
	}
	switch {
	case c.WarnRatio <= 1:
		return bad("WarnRatio", "is %v, must exceed 1", c.WarnRatio)
	case c.CriticalRatio <= c.WarnRatio:
		return bad("CriticalRatio", "(%v) must exceed WarnRatio (%v)", c.CriticalRatio, c.WarnRatio)
	case c.Window <= 0:
		return bad("Window", "is %v, must be > 0", c.Window)
	case c.WindowSlots < 1 || c.WindowSlots > 64:
		return bad("WindowSlots", "is %d, must be in [1, 64]", c.WindowSlots)
	case c.BaselineSamples < 1:
		return bad("BaselineSamples", "is %d, must be >= 1", c.BaselineSamples)
	case c.MinSamples < 1:
		return bad("MinSamples", "is %d, must be >= 1", c.MinSamples)
	case c.LatencyFloorNs < 0:
		return bad("LatencyFloorNs", "is %d, must be >= 0", c.LatencyFloorNs)
	case c.MaxLatencyNs < 1000:
		return bad("MaxLatencyNs", "is %d, must be at least 1000", c.MaxLatencyNs)
	case c.HysteresisClearRatio <= 0 || c.HysteresisClearRatio > 1:
		return bad("HysteresisClearRatio", "is %v, must be in (0, 1]", c.HysteresisClearRatio)
	case c.SignificantFigures < 0 || c.SignificantFigures > 5:
		return bad("SignificantFigures", "is %d, must be in [1, 5] (0: 3)", c.SignificantFigures)
	}
	return nil
}

// PeerStatus is one follower's fail-slow state.
type PeerStatus struct {
	Peer          int
	Samples       int64 // observations in the current window
	P99Ns         int64
	BaselineP99Ns int64 // 0 while learning
	SlowdownRatio float64
	Learning      bool     // baseline not yet established
	Level         Severity // Info: not slow; Warn or Critical: fail-slow
}

// Tracker tracks per-follower probe completion latency. It is pure: time
// comes from the caller. Safe for concurrent use (the leader observes, the
// Monitor reads); Observe does not allocate once a peer is known.
type Tracker struct {
	cfg   Config
	mu    sync.Mutex
	peers map[int]*peerLatency
	merge *hdrhistogram.Histogram // scratch for window merges
}

type peerLatency struct {
	baseline      *hdrhistogram.Histogram
	baselineP99Ns int64
	slots         []*hdrhistogram.Histogram
	cur           int
	curStart      time.Time
	level         Severity
}

const histLowestNs = 1

// New validates cfg and returns an empty tracker.
func New(cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Tracker{cfg: cfg, peers: map[int]*peerLatency{}, merge: cfg.newHist()}, nil
}

func (c Config) newHist() *hdrhistogram.Histogram {
	figs := c.SignificantFigures
	if figs == 0 {
		figs = 3
	}
	return hdrhistogram.New(histLowestNs, c.MaxLatencyNs, figs)
}

func (f *Tracker) peer(id int, now time.Time) *peerLatency {
	p := f.peers[id]
	if p == nil {
		p = &peerLatency{baseline: f.cfg.newHist(), curStart: now}
		for i := 0; i < f.cfg.WindowSlots; i++ {
			p.slots = append(p.slots, f.cfg.newHist())
		}
		f.peers[id] = p
	}
	return p
}

// rotate ages out slots older than the window.
func (f *Tracker) rotate(p *peerLatency, now time.Time) {
	slot := f.cfg.Window / time.Duration(f.cfg.WindowSlots)
	if now.Sub(p.curStart) >= f.cfg.Window+slot {
		for _, h := range p.slots {
			h.Reset()
		}
		p.curStart = now
		return
	}
	for now.Sub(p.curStart) >= slot {
		p.cur = (p.cur + 1) % len(p.slots)
		p.slots[p.cur].Reset()
		p.curStart = p.curStart.Add(slot)
	}
}

// Observe records one probe completion of peer taking latencyNs, seen at now.
func (f *Tracker) Observe(peer int, latencyNs int64, now time.Time) {
	if latencyNs < histLowestNs {
		latencyNs = histLowestNs
	}
	if latencyNs > f.cfg.MaxLatencyNs {
		latencyNs = f.cfg.MaxLatencyNs
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.peer(peer, now)
	f.rotate(p, now)
	if p.baselineP99Ns == 0 {
		_ = p.baseline.RecordValue(latencyNs) // in range by the clamp above
		if p.baseline.TotalCount() >= int64(f.cfg.BaselineSamples) {
			p.baselineP99Ns = max(p.baseline.ValueAtQuantile(99), 1)
		}
	}
	_ = p.slots[p.cur].RecordValue(latencyNs)
}

// ResetBaseline forgets a peer's baseline (after its hardware was replaced).
func (f *Tracker) ResetBaseline(peer int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.peers[peer]; p != nil {
		p.baseline.Reset()
		p.baselineP99Ns = 0
		p.level = Info
	}
}

// Forget drops a peer that left the configuration.
func (f *Tracker) Forget(peer int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.peers, peer)
}

// Status returns every known peer's state at now, ordered by peer id.
func (f *Tracker) Status(now time.Time) []PeerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]int, 0, len(f.peers))
	for id := range f.peers {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	out := make([]PeerStatus, 0, len(ids))
	for _, id := range ids {
		out = append(out, f.statusLocked(id, now))
	}
	return out
}

func (f *Tracker) statusLocked(id int, now time.Time) PeerStatus {
	p := f.peers[id]
	f.rotate(p, now)
	f.merge.Reset()
	for _, h := range p.slots {
		f.merge.Merge(h)
	}
	st := PeerStatus{
		Peer:          id,
		Samples:       f.merge.TotalCount(),
		BaselineP99Ns: p.baselineP99Ns,
		Learning:      p.baselineP99Ns == 0,
	}
	if st.Samples > 0 {
		st.P99Ns = f.merge.ValueAtQuantile(99)
	}
	if st.Learning || st.Samples < f.cfg.MinSamples {
		st.Level = p.level // not enough evidence either way: keep the level
		return st
	}
	st.SlowdownRatio = float64(st.P99Ns) / float64(p.baselineP99Ns)
	ratio := st.SlowdownRatio
	if st.P99Ns < f.cfg.LatencyFloorNs {
		ratio = 0
	}
	p.level = LevelFor(p.level, ratio, f.cfg.WarnRatio, f.cfg.CriticalRatio, true, f.cfg.HysteresisClearRatio)
	st.Level = p.level
	return st
}

// Summary is the ProbeSummary the Arbiter reads: the p99 over all peers'
// windows (the probe-latency row) and each peer's status.
func (f *Tracker) Summary(now time.Time) ProbeSummary {
	peers := f.Status(now)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.merge.Reset()
	for _, p := range f.peers {
		for _, h := range p.slots {
			f.merge.Merge(h)
		}
	}
	s := ProbeSummary{Samples: f.merge.TotalCount(), Peers: peers}
	if s.Samples > 0 {
		s.P99Ns = f.merge.ValueAtQuantile(99)
	}
	return s
}

// ErrInvalidConfig is wrapped by Config.Validate errors; hwmon's
// ErrInvalidConfig is the same value.
var ErrInvalidConfig = errors.New("hwmon: invalid config")

// ProbeSummary is the tracker's view at snapshot time.
type ProbeSummary struct {
	P99Ns   int64 // p99 of all followers' probe completions in the window
	Samples int64
	Peers   []PeerStatus
}

// Severity grades a reason.
type Severity int

const (
	// Info records something worth knowing (a counter reset) that is not a fault.
	Info Severity = iota
	// Warn crosses the warning threshold of a table row.
	Warn
	// Critical crosses the critical threshold of a table row.
	Critical
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warn:
		return "warn"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// LevelFor grades value against warn and critical thresholds ("value >
// threshold" crosses), with hysteresis against the previous level: a level
// is kept until value falls to clearRatio of that level's threshold.
// hasWarn false means the row has no warning level.
func LevelFor(prev Severity, value, warn, critical float64, hasWarn bool, clearRatio float64) Severity {
	next := Info
	switch {
	case value > critical:
		next = Critical
	case hasWarn && value > warn:
		next = Warn
	}
	if next >= prev {
		return next
	}
	if prev == Critical && value > critical*clearRatio {
		return Critical
	}
	if next < Warn && prev >= Warn && hasWarn && value > warn*clearRatio {
		return Warn
	}
	return next
}
