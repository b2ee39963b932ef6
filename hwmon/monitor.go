package hwmon

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// NewCollectors builds the collectors cfg asks for, in report order.
// The eBPF collector loads its program lazily on first Collect.
func NewCollectors(cfg Config) []Collector {
	cs := []Collector{
		&EDACCollector{SysfsRoot: cfg.SysfsRoot},
		&RasdaemonCollector{Path: cfg.RasdaemonDB, Lookback: cfg.RasdaemonLookback},
		&SMARTCollector{SmartctlPath: cfg.SmartctlPath, Devices: cfg.SmartDevices, SysfsRoot: cfg.SysfsRoot,
			Timeout: cfg.SmartTimeout, Interval: cfg.SmartInterval},
		&BlockStatCollector{SysfsRoot: cfg.SysfsRoot},
		&EBPFLatencyCollector{SysfsRoot: cfg.SysfsRoot, Disabled: cfg.DisableEBPF},
		&RDMACollector{SysfsRoot: cfg.SysfsRoot},
	}
	if !cfg.DisableNetlink {
		cs = append(cs, &NetdevCollector{})
	} else {
		cs = append(cs, disabledCollector{name: "netdev", why: "disabled by Config.DisableNetlink"})
	}
	cs = append(cs, &ThrottleCollector{SysfsRoot: cfg.SysfsRoot})
	return cs
}

type disabledCollector struct{ name, why string }

func (d disabledCollector) Name() string { return d.name }
func (d disabledCollector) Collect(_ context.Context, s *Snapshot) {
	s.Signals = append(s.Signals, SignalStatus{Name: d.name, Reason: d.why})
}

func closeCollectors(cs []Collector) error {
	var errs []error
	for _, c := range cs {
		if cl, ok := c.(io.Closer); ok {
			errs = append(errs, cl.Close())
		}
	}
	return errors.Join(errs...)
}

// Collect runs every collector once into a snapshot taken at now.
func Collect(ctx context.Context, cs []Collector, now time.Time) Snapshot {
	s := Snapshot{At: now}
	for _, c := range cs {
		if ctx.Err() != nil {
			s.Signals = append(s.Signals, SignalStatus{Name: c.Name(), Reason: "not collected: " + ctx.Err().Error()})
			continue
		}
		c.Collect(ctx, &s)
	}
	return s
}

// CollectOnce reads every signal twice, OnceSpan apart (disk latency is a
// delta), and returns the arbiter's report on the second reading. It is the
// body of `mu health`. The only error is an invalid cfg.
func CollectOnce(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	cfg.SmartInterval = time.Hour // run smartctl once, reuse the answer for the second reading
	a, err := NewArbiter(cfg.Thresholds)
	if err != nil {
		return Report{}, err
	}
	cs := NewCollectors(cfg)
	defer closeCollectors(cs)
	a.Evaluate(Collect(ctx, cs, time.Now()))
	select {
	case <-ctx.Done():
	case <-time.After(cfg.OnceSpan):
	}
	return a.Evaluate(Collect(ctx, cs, time.Now())), nil
}

// MonitorOption adjusts a Monitor.
type MonitorOption func(*Monitor)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) MonitorOption { return func(m *Monitor) { m.now = now } }

// WithCollectors replaces the collectors NewCollectors would build.
func WithCollectors(cs ...Collector) MonitorOption { return func(m *Monitor) { m.collectors = cs } }

// WithProbeSummary makes the Monitor read layer 2 (the probe-latency row
// and per-follower fail-slow state) from fn instead of its own FailSlow:
// consensus measures it on the fabric's clock (consensus.Replica's
// ProbeSummary), which need not be the wall clock the Monitor runs on.
func WithProbeSummary(fn func() ProbeSummary) MonitorOption {
	return func(m *Monitor) { m.probeSummary = fn }
}

// Monitor runs the collectors on a cadence, feeds the Arbiter (together
// with FailSlow and Verifier) and publishes the latest Report. It runs off
// the replication hot path: node wiring reads Latest or Changes and hands
// each verdict to consensus (Verdict.Apply on the Replica), which maps
// Failed to fence and Degraded to "not preferred as leader".
type Monitor struct {
	cfg        Config
	collectors []Collector
	arbiter    *Arbiter
	failSlow   *FailSlow
	verifier   *Verifier
	now        func() time.Time
	// probeSummary replaces failSlow.Summary when set (WithProbeSummary).
	probeSummary func() ProbeSummary

	step    sync.Mutex // serialises collection and the arbiter
	latest  atomic.Pointer[published]
	changes chan Report
	kick    chan struct{}
}

type published struct {
	report   Report
	snapshot Snapshot
}

// NewMonitor validates cfg. Nothing is read until Step or Run.
func NewMonitor(cfg Config, opts ...MonitorOption) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a, err := NewArbiter(cfg.Thresholds)
	if err != nil {
		return nil, err
	}
	fs, err := NewFailSlow(cfg.FailSlow)
	if err != nil {
		return nil, err
	}
	m := &Monitor{cfg: cfg, arbiter: a, failSlow: fs, verifier: &Verifier{}, now: time.Now,
		changes: make(chan Report, 1), kick: make(chan struct{}, 1)}
	for _, o := range opts {
		o(m)
	}
	if m.collectors == nil {
		m.collectors = NewCollectors(cfg)
	}
	for _, c := range m.collectors {
		if n, ok := c.(*NetdevCollector); ok {
			n.OnLinkEvent = func(string) { m.Kick() }
		}
	}
	return m, nil
}

// FailSlow is the tracker the leader feeds with probe completions.
func (m *Monitor) FailSlow() *FailSlow { return m.failSlow }

// Verifier is where the log records checksum verifications.
func (m *Monitor) Verifier() *Verifier { return m.verifier }

// Kick asks Run to collect now rather than at the next tick (a link event).
func (m *Monitor) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Step collects once, evaluates, publishes and returns the report.
func (m *Monitor) Step(ctx context.Context) Report {
	m.step.Lock()
	defer m.step.Unlock()
	now := m.now()
	s := Collect(ctx, m.collectors, now)
	var p ProbeSummary
	if m.probeSummary != nil {
		p = m.probeSummary()
	} else {
		p = m.failSlow.Summary(now)
	}
	s.Probe = &p
	c := m.verifier.Counts()
	s.Checksum = &c
	s.Signals = append(s.Signals,
		SignalStatus{Name: "probe", Source: "FailSlow", Available: true, Note: probeNote(p)},
		SignalStatus{Name: "log-checksum", Source: "Verifier", Available: true, Note: checksumNote(c)})
	r := m.arbiter.Evaluate(s)
	prev := m.latest.Swap(&published{report: r, snapshot: s})
	if prev == nil || prev.report.Verdict != r.Verdict {
		select { // latest wins: drop an unread older change
		case <-m.changes:
		default:
		}
		m.changes <- r
	}
	return r
}

// Latest returns the most recent report; ok is false before the first Step.
func (m *Monitor) Latest() (r Report, ok bool) {
	p := m.latest.Load()
	if p == nil {
		return Report{}, false
	}
	return p.report, true
}

// Changes delivers a report whenever the verdict changes (the first report
// counts as a change). Only the newest undelivered change is kept.
func (m *Monitor) Changes() <-chan Report { return m.changes }

// Run collects every Config.Interval (and on Kick) until ctx ends, then
// closes the collectors.
func (m *Monitor) Run(ctx context.Context) error {
	for _, c := range m.collectors {
		if n, ok := c.(*NetdevCollector); ok {
			_ = n.Subscribe() // failure is reported in the netdev signal's note
		}
	}
	defer closeCollectors(m.collectors)
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	m.Step(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-m.kick:
		}
		m.Step(ctx)
	}
}

// Close releases the collectors' kernel handles (eBPF programs, the
// netlink subscription). Run does this itself when it returns; call Close
// after using Step without Run.
func (m *Monitor) Close() error {
	m.step.Lock()
	defer m.step.Unlock()
	return closeCollectors(m.collectors)
}

// ClearLatched forgets latched fences (operator action after repair).
func (m *Monitor) ClearLatched() {
	m.step.Lock()
	defer m.step.Unlock()
	m.arbiter.ClearLatched()
}
