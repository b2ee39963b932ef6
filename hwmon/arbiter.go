package hwmon

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Arbiter applies the decision table to Snapshots. It is pure: no I/O, no
// clock (time comes from Snapshot.At), so every row can be driven by a test.
// It keeps state between snapshots for sliding-window rates, hysteresis,
// baselines and latched fences. Not safe for concurrent use; Monitor
// serialises calls.
type Arbiter struct {
	th       Thresholds
	counters map[string]*counterWindow
	levels   map[string]Severity
	held     map[string]heldReason // last warn/critical reason per level key
	touched  map[string]bool       // level keys evaluated in this Evaluate
	disks    map[string]*diskTrack
	latched  map[string]Reason

	// per-Evaluate scratch
	reasons []Reason
	signals []SignalStatus
	diskOut []DiskLatency
}

// NewArbiter validates the thresholds and returns an arbiter with no history.
func NewArbiter(th Thresholds) (*Arbiter, error) {
	if err := th.Validate(); err != nil {
		return nil, err
	}
	return &Arbiter{
		th:       th,
		counters: map[string]*counterWindow{},
		levels:   map[string]Severity{},
		held:     map[string]heldReason{},
		disks:    map[string]*diskTrack{},
		latched:  map[string]Reason{},
	}, nil
}

// ClearLatched forgets fences that latch (memory UE, log checksum failure).
// Only an operator who has dealt with the cause should call it; a UE that
// EDAC still reports fences again on the next snapshot.
func (a *Arbiter) ClearLatched() {
	a.latched = map[string]Reason{}
}

// Evaluate folds one snapshot into the arbiter's history and returns the
// verdict with its reasons. Snapshots must come in time order.
func (a *Arbiter) Evaluate(s Snapshot) Report {
	a.reasons, a.diskOut, a.touched = nil, nil, map[string]bool{}
	a.signals = append([]SignalStatus(nil), s.Signals...)
	now := s.At

	a.memory(s, now)
	a.disk(s, now)
	a.smart(s, now)
	a.links(s, now)
	a.cpu(s, now)
	a.probe(s)
	a.checksum(s, now)

	a.holdUnseen()
	for _, r := range a.latched {
		a.reasons = append(a.reasons, r)
	}
	sort.SliceStable(a.reasons, func(i, j int) bool {
		ri, rj := a.reasons[i], a.reasons[j]
		if vi, vj := verdictOf(ri.Action), verdictOf(rj.Action); vi != vj {
			return vi > vj
		}
		if ri.Severity != rj.Severity {
			return ri.Severity > rj.Severity
		}
		if ri.Row != rj.Row {
			return ri.Row < rj.Row
		}
		return ri.Subject < rj.Subject
	})
	rep := Report{At: now, Reasons: a.reasons, Signals: a.signals, Disks: a.diskOut}
	for _, r := range rep.Reasons {
		rep.Verdict = max(rep.Verdict, verdictOf(r.Action))
	}
	return rep
}

func verdictOf(act Action) Verdict {
	switch act {
	case ActionFence:
		return Failed
	case ActionDegrade:
		return Degraded
	}
	return Healthy
}

func (a *Arbiter) add(r Reason) { a.reasons = append(a.reasons, r) }

func (a *Arbiter) latch(key string, r Reason, now time.Time) {
	if _, ok := a.latched[key]; ok {
		return
	}
	r.Detail += fmt.Sprintf(" (latched at %s until cleared)", now.UTC().Format(time.RFC3339))
	a.latched[key] = r
}

// count feeds a cumulative counter sample and returns the increments within
// window. A reset is reported as an info reason and noted on the signal.
func (a *Arbiter) count(signal, key string, v uint64, window time.Duration, now time.Time) uint64 {
	c := a.counters[key]
	if c == nil {
		c = newCounterWindow(window)
		a.counters[key] = c
	}
	u := c.update(v, now)
	if u.reset {
		msg := fmt.Sprintf("counter reset: %s went from %d to %d; counted as fresh increments", key, u.prev, v)
		a.add(Reason{Row: RowCounterReset, Severity: Info, Subject: key, Detail: msg})
		a.noteSignal(signal, msg)
	}
	return c.sum(now)
}

func (a *Arbiter) noteSignal(name, msg string) {
	for i := range a.signals {
		if n := a.signals[i].Name; n == name || strings.HasPrefix(n, name+" ") {
			if a.signals[i].Note != "" {
				a.signals[i].Note += "; "
			}
			a.signals[i].Note += msg
			return
		}
	}
}

func (a *Arbiter) level(key string, value, warn, critical float64, hasWarn bool) Severity {
	l := levelFor(a.levels[key], value, warn, critical, hasWarn, a.th.HysteresisClearRatio)
	a.levels[key] = l
	a.touched[key] = true
	if l == Info {
		delete(a.held, key)
	}
	return l
}

type heldReason struct {
	reason  Reason
	signals []string // the signals whose loss must not clear the reason
}

// addHeld adds a reason tied to a level key, remembering it so that losing
// the signal later does not silently turn the row healthy.
func (a *Arbiter) addHeld(key string, signals []string, r Reason) {
	a.add(r)
	a.held[key] = heldReason{reason: r, signals: signals}
}

// holdUnseen re-emits the last warn/critical reason of every level key
// that was not evaluated this time because its signals are unavailable.
// A key whose signals are available but which was not evaluated (the
// device is gone) is forgotten.
func (a *Arbiter) holdUnseen() {
	for key, h := range a.held {
		if a.touched[key] {
			continue
		}
		if a.signalsDown(h.signals) {
			r := h.reason
			r.Detail += " (held: signal unavailable now; last known state)"
			a.add(r)
			continue
		}
		delete(a.held, key)
		delete(a.levels, key)
	}
}

func (a *Arbiter) signalsDown(names []string) bool {
	for _, st := range a.signals {
		for _, n := range names {
			if st.Name == n && st.Available {
				return false
			}
		}
	}
	return true
}

func perWindow(n uint64, window, unit time.Duration) float64 {
	return float64(n) * float64(unit) / float64(window)
}

const day = 24 * time.Hour

// symbolErrorSaturated is where InfiniBand's 16-bit SymbolErrorCounter stops.
const symbolErrorSaturated = 0xFFFF

func (a *Arbiter) memory(s Snapshot, now time.Time) {
	th := a.th
	var edacCE uint64
	var ueSubjects []string
	var ueTotal uint64
	worstLabel, worstCE := "", uint64(0)
	for _, mc := range s.EDAC {
		edacCE += a.count("edac", "edac/"+mc.Name+"/ce", mc.CECount+mc.CENoInfo, th.MemoryCEWindow, now)
		a.count("edac", "edac/"+mc.Name+"/ue", mc.UECount+mc.UENoInfo, th.MemoryCEWindow, now)
		if ue := mc.UECount + mc.UENoInfo; ue > 0 {
			ueTotal += ue
			ueSubjects = append(ueSubjects, mc.Name)
		}
		for _, d := range mc.DIMMs {
			n := a.count("edac", "edac/"+mc.Name+"/"+d.Name+"/ce", d.CECount, th.MemoryCEWindow, now)
			if n > worstCE {
				worstCE, worstLabel = n, mc.Name+"/"+d.Name
				if d.Label != "" {
					worstLabel += " " + d.Label
				}
			}
			if d.UECount > 0 {
				lbl := mc.Name + "/" + d.Name
				if d.Label != "" {
					lbl += " " + d.Label
				}
				ueSubjects = append(ueSubjects, lbl)
			}
		}
	}
	cePerDay := perWindow(edacCE, th.MemoryCEWindow, day)
	if r := s.Rasdaemon; r != nil && r.Lookback > 0 {
		if rasPerDay := perWindow(r.MemCorrected, r.Lookback, day); rasPerDay > cePerDay {
			// rasdaemon records the same EDAC events; take the larger view, never the sum.
			cePerDay = rasPerDay
			if r.WorstCELabel != "" {
				worstLabel = r.WorstCELabel
			}
		}
		if n := r.MemUncorrected + r.MCEUncorrected + r.MemoryFailures; n > 0 {
			a.latch("ue/rasdaemon", Reason{
				Row: RowMemoryUE, Severity: Critical, Action: ActionFence, Subject: "rasdaemon",
				Value: float64(n), Threshold: 0, Unit: "errors",
				Detail: fmt.Sprintf("rasdaemon logged %d uncorrected memory events, %d uncorrected MCEs, %d memory failures in the last %v",
					r.MemUncorrected, r.MCEUncorrected, r.MemoryFailures, r.Lookback),
			}, now)
		}
	}
	if ueTotal > 0 || len(ueSubjects) > 0 {
		a.latch("ue/edac", Reason{
			Row: RowMemoryUE, Severity: Critical, Action: ActionFence, Subject: strings.Join(ueSubjects, ", "),
			Value: float64(ueTotal), Threshold: 0, Unit: "errors",
			Detail: "EDAC reports uncorrectable memory errors",
		}, now)
	}
	if len(s.EDAC) == 0 && s.Rasdaemon == nil {
		return // no memory source this time: a held reason stands in
	}
	switch a.level("memory/ce", cePerDay, th.MemoryCEWarnPerDay, th.MemoryCECriticalPerDay, true) {
	case Warn:
		a.addHeld("memory/ce", []string{"edac", "rasdaemon"}, Reason{Row: RowMemoryCE, Severity: Warn, Action: ActionPlanDIMMReplacement, Subject: worstLabel,
			Value: cePerDay, Threshold: th.MemoryCEWarnPerDay, Unit: "errors/day", Detail: "corrected ECC errors rising"})
	case Critical:
		a.addHeld("memory/ce", []string{"edac", "rasdaemon"}, Reason{Row: RowMemoryCE, Severity: Critical, Action: ActionDegrade, Subject: worstLabel,
			Value: cePerDay, Threshold: th.MemoryCECriticalPerDay, Unit: "errors/day", Detail: "corrected ECC error storm; plan DIMM replacement"})
	}
}

// diskTrack is one block device's latency history.
type diskTrack struct {
	prev      DiskStat
	havePrev  bool
	prevHist  []uint64
	intervals []latencyInterval // per-interval latency within DiskWindow
	learning  map[string][]float64
	baseline  map[string]float64 // ns, per source ("sysfs" or "ebpf")
	critSince time.Time
}

type latencyInterval struct {
	at     time.Time
	source string
	ns     float64  // sysfs: mean latency of the interval; ebpf: its p99
	hist   []uint64 // ebpf: bucket deltas of the interval
	// sysfs read and write means, for reporting
	readNs, writeNs float64
}

func (a *Arbiter) disk(s Snapshot, now time.Time) {
	hists := map[string][]uint64{}
	for _, h := range s.DiskLatency {
		hists[h.Device] = h.Buckets
	}
	for _, d := range s.Disks {
		t := a.disks[d.Device]
		if t == nil {
			t = &diskTrack{learning: map[string][]float64{}, baseline: map[string]float64{}}
			a.disks[d.Device] = t
		}
		var iv, statIv *latencyInterval
		if t.havePrev {
			statIv = a.diskStatInterval(t, d, now)
		}
		if h, ok := hists[d.Device]; ok {
			iv = a.diskHistInterval(t, d.Device, h, now)
		}
		if iv == nil {
			iv = statIv
		}
		t.prev, t.havePrev = d, true
		if iv != nil {
			t.intervals = append(t.intervals, *iv)
		}
		out := DiskLatency{Device: d.Device}
		if statIv != nil {
			out.ReadLatency, out.WriteLatency = time.Duration(statIv.readNs), time.Duration(statIv.writeNs)
		}
		a.diskOut = append(a.diskOut, out)
		cut := 0
		for cut < len(t.intervals) && now.Sub(t.intervals[cut].at) >= a.th.DiskWindow {
			cut++
		}
		t.intervals = append(t.intervals[:0], t.intervals[cut:]...)
		a.judgeDisk(d.Device, t, iv, now)
	}
}

func (a *Arbiter) diskHistInterval(t *diskTrack, dev string, h []uint64, now time.Time) *latencyInterval {
	// The tracer's counts start at zero when it attaches, so a device first
	// seen now is measured against zeros.
	prev := t.prevHist
	t.prevHist = append([]uint64(nil), h...)
	delta := make([]uint64, len(h))
	var total uint64
	for i := range h {
		var p uint64
		if i < len(prev) {
			p = prev[i]
		}
		if h[i] < p {
			msg := fmt.Sprintf("counter reset: ebpf latency histogram of %s went backwards; interval skipped", dev)
			a.add(Reason{Row: RowCounterReset, Severity: Info, Subject: "ebpf/" + dev, Detail: msg})
			a.noteSignal("ebpf-blklat", msg)
			return nil
		}
		delta[i] = h[i] - p
		total += delta[i]
	}
	if total == 0 {
		return nil
	}
	return &latencyInterval{at: now, source: "ebpf", hist: delta, ns: histQuantileNs(delta, 0.99)}
}

func (a *Arbiter) diskStatInterval(t *diskTrack, d DiskStat, now time.Time) *latencyInterval {
	p := t.prev
	if d.ReadIOs < p.ReadIOs || d.WriteIOs < p.WriteIOs || d.ReadTicksMs < p.ReadTicksMs || d.WriteTicks < p.WriteTicks {
		msg := fmt.Sprintf("counter reset: /sys/block/%s/stat went backwards (read_ios %d->%d, write_ios %d->%d); interval skipped",
			d.Device, p.ReadIOs, d.ReadIOs, p.WriteIOs, d.WriteIOs)
		a.add(Reason{Row: RowCounterReset, Severity: Info, Subject: "blockstat/" + d.Device, Detail: msg})
		a.noteSignal("blockstat", msg)
		return nil
	}
	ios := (d.ReadIOs - p.ReadIOs) + (d.WriteIOs - p.WriteIOs)
	if ios == 0 {
		return nil
	}
	ticksMs := (d.ReadTicksMs - p.ReadTicksMs) + (d.WriteTicks - p.WriteTicks)
	iv := &latencyInterval{at: now, source: "sysfs", ns: float64(ticksMs) * 1e6 / float64(ios)}
	if r := d.ReadIOs - p.ReadIOs; r > 0 {
		iv.readNs = float64(d.ReadTicksMs-p.ReadTicksMs) * 1e6 / float64(r)
	}
	if w := d.WriteIOs - p.WriteIOs; w > 0 {
		iv.writeNs = float64(d.WriteTicks-p.WriteTicks) * 1e6 / float64(w)
	}
	return iv
}

// histQuantileNs reads quantile q from log2-microsecond buckets, taking a
// bucket's upper edge (conservative: never under-reports latency).
func histQuantileNs(b []uint64, q float64) float64 {
	var total uint64
	for _, n := range b {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, n := range b {
		seen += n
		if seen >= rank {
			return float64(uint64(1)<<(i+1)) * 1e3
		}
	}
	return float64(uint64(1)<<len(b)) * 1e3
}

func (a *Arbiter) judgeDisk(dev string, t *diskTrack, iv *latencyInterval, now time.Time) {
	th := a.th
	if iv != nil && t.baseline[iv.source] == 0 {
		l := append(t.learning[iv.source], iv.ns)
		t.learning[iv.source] = l
		if len(l) >= th.DiskBaselineSamples {
			sorted := append([]float64(nil), l...)
			sort.Float64s(sorted)
			t.baseline[iv.source] = max(sorted[len(sorted)/2], 1)
			delete(t.learning, iv.source)
		}
	}
	// Prefer eBPF (true per-I/O p99) when the window has it.
	source := "sysfs"
	var merged []uint64
	var means []float64
	for _, in := range t.intervals {
		if in.source == "ebpf" {
			source = "ebpf"
			if len(merged) < len(in.hist) {
				merged = append(merged, make([]uint64, len(in.hist)-len(merged))...)
			}
			for i, n := range in.hist {
				merged[i] += n
			}
		} else {
			means = append(means, in.ns)
		}
	}
	var p99 float64
	if source == "ebpf" {
		p99 = histQuantileNs(merged, 0.99)
	} else if len(means) > 0 {
		sort.Float64s(means)
		p99 = means[int(math.Ceil(0.99*float64(len(means))))-1]
	}
	base := t.baseline[source]
	ratio := 0.0
	if base > 0 && p99 >= float64(th.DiskLatencyFloor) {
		ratio = p99 / base
	}
	lvl := a.level("disk/"+dev, ratio, th.DiskP99WarnRatio, th.DiskP99CriticalRatio, true)
	if n := len(a.diskOut); n > 0 && a.diskOut[n-1].Device == dev {
		o := &a.diskOut[n-1]
		o.P99, o.Baseline, o.Source, o.Ratio, o.Level = time.Duration(p99), time.Duration(base), source, ratio, lvl
	}
	if lvl < Critical {
		t.critSince = time.Time{}
	} else if t.critSince.IsZero() {
		t.critSince = now
	}
	what := fmt.Sprintf("p99 %.3g ms vs baseline %.3g ms (%s)", p99/1e6, base/1e6, source)
	switch {
	case lvl == Warn:
		a.addHeld("disk/"+dev, []string{"blockstat", "ebpf-blklat"}, Reason{Row: RowDiskP99, Severity: Warn, Action: ActionInspect, Subject: dev,
			Value: ratio, Threshold: th.DiskP99WarnRatio, Unit: "x baseline", Detail: "fail-slow warning: " + what})
	case lvl == Critical && now.Sub(t.critSince) >= th.DiskSustainedFor:
		a.addHeld("disk/"+dev, []string{"blockstat", "ebpf-blklat"}, Reason{Row: RowDiskP99, Severity: Critical, Action: ActionFence, Subject: dev,
			Value: ratio, Threshold: th.DiskP99CriticalRatio, Unit: "x baseline",
			Detail: fmt.Sprintf("fail-slow sustained for %v: %s", now.Sub(t.critSince).Round(time.Second), what)})
	case lvl == Critical:
		a.addHeld("disk/"+dev, []string{"blockstat", "ebpf-blklat"}, Reason{Row: RowDiskP99, Severity: Critical, Action: ActionDegrade, Subject: dev,
			Value: ratio, Threshold: th.DiskP99CriticalRatio, Unit: "x baseline", Detail: "fail-slow: " + what})
	}
}

func (a *Arbiter) smart(s Snapshot, now time.Time) {
	th := a.th
	for _, d := range s.SMART {
		if v, ok := d.ATA[5]; ok {
			switch a.level("realloc/"+d.Device, float64(v), float64(th.ReallocatedWarn), float64(th.ReallocatedCritical), true) {
			case Warn:
				a.addHeld("realloc/"+d.Device, []string{"smart " + d.Device}, Reason{Row: RowReallocated, Severity: Warn, Action: ActionPlanDiskReplacement, Subject: d.Device,
					Value: float64(v), Threshold: float64(th.ReallocatedWarn), Unit: "sectors", Detail: "ATA attribute 5 Reallocated_Sector_Ct"})
			case Critical:
				a.addHeld("realloc/"+d.Device, []string{"smart " + d.Device}, Reason{Row: RowReallocated, Severity: Critical, Action: ActionPlanDiskReplacement, Subject: d.Device,
					Value: float64(v), Threshold: float64(th.ReallocatedCritical), Unit: "sectors", Detail: "ATA attribute 5 Reallocated_Sector_Ct"})
			}
		}
		advise := func(sev Severity, act Action, value float64, unit, detail string) {
			a.add(Reason{Row: RowSMARTHealth, Severity: sev, Action: act, Subject: d.Device, Value: value, Unit: unit, Detail: detail})
		}
		if d.ExitStatus&smartExitDiskFailing != 0 || (d.Passed != nil && !*d.Passed) {
			advise(Critical, ActionPlanDiskReplacement, 1, "", "SMART overall health: FAILING")
		}
		if d.ExitStatus&smartExitPrefail != 0 {
			advise(Warn, ActionPlanDiskReplacement, 1, "", "a prefail attribute is at or below its threshold")
		}
		for _, id := range []int{187, 197, 198} {
			if v := d.ATA[id]; v > 0 {
				advise(Warn, ActionPlanDiskReplacement, float64(v), "", fmt.Sprintf("ATA attribute %d %s = %d", id, ataAttrNames[id], v))
			}
		}
		if v, ok := d.ATA[199]; ok {
			if n := a.count("smart", "smart/"+d.Device+"/199", v, th.LinkWindow, now); n > 0 {
				advise(Warn, ActionCheckCabling, float64(n), "errors", fmt.Sprintf("UDMA CRC errors rose by %d within %v", n, th.LinkWindow))
			}
		}
		if n := d.NVMe; n != nil {
			if n.CriticalWarning != 0 {
				sev := Warn
				if n.CriticalWarning&(nvmeWarnReliability|nvmeWarnReadOnly) != 0 {
					sev = Critical
				}
				advise(sev, ActionPlanDiskReplacement, float64(n.CriticalWarning), "",
					"NVMe critical_warning: "+strings.Join(decodeNVMeCriticalWarning(n.CriticalWarning), ", "))
			}
			if n.MediaErrors > 0 {
				advise(Warn, ActionPlanDiskReplacement, float64(n.MediaErrors), "errors", fmt.Sprintf("NVMe media_errors = %d", n.MediaErrors))
			}
			if n.PercentageUsed >= 100 {
				advise(Warn, ActionPlanDiskReplacement, float64(n.PercentageUsed), "%", "NVMe endurance used up (percentage_used >= 100)")
			}
		}
	}
}

func (a *Arbiter) links(s Snapshot, now time.Time) {
	th := a.th
	judge := func(subject string, n uint64, detail string) {
		perHour := perWindow(n, th.LinkWindow, time.Hour)
		switch a.level("link/"+subject, perHour, th.SymbolErrorWarnPerHour, th.SymbolErrorCriticalPerHour, true) {
		case Warn:
			a.addHeld("link/"+subject, []string{"rdma", "netdev"}, Reason{Row: RowLinkSymbol, Severity: Warn, Action: ActionCheckCabling, Subject: subject,
				Value: perHour, Threshold: th.SymbolErrorWarnPerHour, Unit: "errors/h", Detail: detail + " rising"})
		case Critical:
			a.addHeld("link/"+subject, []string{"rdma", "netdev"}, Reason{Row: RowLinkSymbol, Severity: Critical, Action: ActionDegrade, Subject: subject,
				Value: perHour, Threshold: th.SymbolErrorCriticalPerHour, Unit: "errors/h", Detail: detail + "; check cabling"})
		}
	}
	flap := func(subject string, n uint64, detail string) {
		if n > 0 {
			a.add(Reason{Row: RowLinkFlap, Severity: Warn, Action: ActionCheckCabling, Subject: subject,
				Value: float64(n), Unit: "events", Detail: fmt.Sprintf("%s: %d within %v", detail, n, th.LinkWindow)})
		}
	}
	for _, p := range s.RDMAPorts {
		subj := fmt.Sprintf("%s/%d", p.Device, p.Port)
		if v, ok := p.Counters["symbol_error"]; ok {
			judge(subj, a.count("rdma", "rdma/"+subj+"/symbol_error", v, th.LinkWindow, now), "RDMA symbol_error")
			if v >= symbolErrorSaturated {
				// The PMA counter is 16 bits and saturates: it can no longer rise,
				// so the rate above reads as zero however bad the link is.
				a.add(Reason{Row: RowLinkSymbol, Severity: Warn, Action: ActionCheckCabling, Subject: subj,
					Value: float64(v), Unit: "errors",
					Detail: "symbol_error saturated at 65535: rate unknown until the port counters are cleared"})
			}
		}
		var flaps uint64
		for _, c := range []string{"link_downed", "link_error_recovery"} {
			if v, ok := p.Counters[c]; ok {
				flaps += a.count("rdma", "rdma/"+subj+"/"+c, v, th.LinkWindow, now)
			}
		}
		flap(subj, flaps, "RDMA link_downed + link_error_recovery")
	}
	for _, n := range s.Netdevs {
		judge(n.Name, a.count("netdev", "netdev/"+n.Name+"/crc_frame", n.RxCRCErrors+n.RxFrameErrors, th.LinkWindow, now), "Ethernet CRC + frame errors")
		flap(n.Name, a.count("netdev", "netdev/"+n.Name+"/carrier_changes", n.CarrierChanges, th.LinkWindow, now), "carrier changes")
	}
}

func (a *Arbiter) cpu(s Snapshot, now time.Time) {
	var cpus []string
	var total uint64
	for _, c := range s.CPUThrottle {
		n := a.count("cpu-throttle", fmt.Sprintf("cpu%d/core_throttle_count", c.CPU), c.CoreCount, a.th.LinkWindow, now)
		if c.HasPackageInfo {
			n += a.count("cpu-throttle", fmt.Sprintf("cpu%d/package_throttle_count", c.CPU), c.PackageCount, a.th.LinkWindow, now)
		}
		if n > 0 {
			cpus = append(cpus, fmt.Sprintf("cpu%d", c.CPU))
			total += n
		}
	}
	if total > 0 {
		a.add(Reason{Row: RowCPUThrottle, Severity: Warn, Action: ActionInspect, Subject: strings.Join(cpus, ","),
			Value: float64(total), Unit: "events", Detail: fmt.Sprintf("thermal throttling within %v: latency will suffer", a.th.LinkWindow)})
	}
}

func (a *Arbiter) probe(s Snapshot) {
	p := s.Probe
	if p == nil {
		return
	}
	th := a.th
	ms := float64(p.P99Ns) / 1e6
	if p.Samples > 0 {
		warn, crit := float64(th.ProbeLatencyWarn)/1e6, float64(th.ProbeLatencyCritical)/1e6
		switch lvl := a.level("probe", ms, warn, crit, true); lvl {
		case Warn, Critical:
			thr := warn
			if lvl == Critical {
				thr = crit
			}
			a.addHeld("probe", []string{"probe"}, Reason{Row: RowProbeLatency, Severity: lvl, Action: ActionInspect, Subject: "followers",
				Value: ms, Threshold: thr, Unit: "ms", Detail: "empty-entry probe p99"})
		}
	}
	for _, ps := range p.Peers {
		if ps.Level >= Warn {
			a.add(Reason{Row: RowFailSlowPeer, Severity: ps.Level, Action: ActionInspect, Subject: fmt.Sprintf("peer %d", ps.Peer),
				Value: ps.SlowdownRatio, Unit: "x baseline",
				Detail: fmt.Sprintf("probe p99 %.3g ms vs baseline %.3g ms", float64(ps.P99Ns)/1e6, float64(ps.BaselineP99Ns)/1e6)})
		}
	}
}

func (a *Arbiter) checksum(s Snapshot, now time.Time) {
	c := s.Checksum
	if c == nil {
		return
	}
	if n := c.ReadFailures + c.WriteFailures; n > 0 {
		a.latch("checksum", Reason{Row: RowLogChecksum, Severity: Critical, Action: ActionFence, Subject: "log",
			Value: float64(n), Threshold: 0, Unit: "failures",
			Detail: fmt.Sprintf("verification checksum FAILED: %d read (storage corruption), %d write (in-flight corruption); report to operators",
				c.ReadFailures, c.WriteFailures)}, now)
	}
}
