package hwmon

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exposes the latest Report and Snapshot of a Monitor as Prometheus
// metrics. Values are read at scrape time; nothing is recorded on the
// replication path. Counters mirror the kernel's or device's own cumulative
// counters (so a counter reset there shows as a reset here, which
// Prometheus's rate() handles).
type metrics struct {
	src func() *published
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	mVerdict         = desc("mu_health_verdict", "Arbiter verdict: 0 Healthy, 1 Degraded, 2 Failed.")
	mReasons         = desc("mu_health_reasons", "Reasons in the latest report by decision-table row and severity.", "row", "severity")
	mSignalAvailable = desc("mu_health_signal_available", "1 if the signal could be read on this machine, 0 if unavailable.", "signal")

	mMemCE       = desc("mu_memory_corrected_errors_total", "EDAC corrected memory errors (dimm=\"noinfo\": not attributed to a DIMM).", "controller", "dimm", "label")
	mMemUE       = desc("mu_memory_uncorrectable_errors_total", "EDAC uncorrectable memory errors (dimm=\"noinfo\": not attributed to a DIMM).", "controller", "dimm", "label")
	mRasdaemon   = desc("mu_rasdaemon_events", "rasdaemon events within the configured lookback.", "table", "type")
	mRasLookback = desc("mu_rasdaemon_lookback_seconds", "Lookback window of mu_rasdaemon_events.")

	mDiskReadLat  = desc("mu_disk_read_latency_seconds", "Mean read latency over the last collection interval (sysfs ticks / completed reads).", "device")
	mDiskWriteLat = desc("mu_disk_write_latency_seconds", "Mean write latency over the last collection interval.", "device")
	mDiskP99      = desc("mu_disk_latency_p99_seconds", "Disk latency p99 over the arbiter's window.", "device", "source")
	mDiskBase     = desc("mu_disk_latency_baseline_seconds", "Learned baseline the disk p99 is compared with (absent while learning).", "device", "source")
	mDiskRatio    = desc("mu_disk_latency_slowdown_ratio", "Disk p99 / baseline (0 below the floor or while learning).", "device")
	mDiskReads    = desc("mu_disk_reads_completed_total", "Reads completed (/sys/block/*/stat).", "device")
	mDiskWrites   = desc("mu_disk_writes_completed_total", "Writes completed.", "device")
	mDiskReadSec  = desc("mu_disk_read_time_seconds_total", "Time spent reading.", "device")
	mDiskWriteSec = desc("mu_disk_write_time_seconds_total", "Time spent writing.", "device")
	mDiskIOLat    = desc("mu_disk_io_latency_seconds", "Per-I/O completion latency from eBPF (log2 buckets).", "device")

	mSmartAttr     = desc("mu_smart_attribute_raw", "Raw value of ATA SMART attributes 5, 187, 197, 198, 199.", "device", "id", "name")
	mSmartExit     = desc("mu_smart_exit_status", "smartctl exit status bitmask.", "device")
	mSmartPassed   = desc("mu_smart_passed", "SMART overall health self-assessment: 1 passed, 0 failing.", "device")
	mNVMeWarn      = desc("mu_smart_nvme_critical_warning", "NVMe critical_warning bitmask.", "device")
	mNVMeMedia     = desc("mu_smart_nvme_media_errors_total", "NVMe media and data integrity errors.", "device")
	mNVMeUsed      = desc("mu_smart_nvme_percentage_used_ratio", "NVMe endurance used (percentage_used / 100; may exceed 1).", "device")
	mSmartTemp     = desc("mu_smart_temperature_celsius", "Drive temperature.", "device")
	mRDMAState     = desc("mu_rdma_port_active", "1 if the RDMA port state is ACTIVE.", "device", "port", "state", "netdev")
	mRDMATx        = desc("mu_rdma_port_transmit_bytes_total", "Bytes transmitted (port_xmit_data is in 4-byte units).", "device", "port")
	mRDMARx        = desc("mu_rdma_port_receive_bytes_total", "Bytes received (port_rcv_data is in 4-byte units).", "device", "port")
	mRDMASymbol    = desc("mu_rdma_port_symbol_errors_total", "Physical-layer symbol errors.", "device", "port")
	mRDMACounter   = desc("mu_rdma_port_counter_total", "Other counters/ files of the port, as read.", "device", "port", "counter")
	mRDMAHW        = desc("mu_rdma_port_hw_counter_total", "hw_counters/ files of the port, as read.", "device", "port", "counter")
	mRDMAReadErr   = desc("mu_rdma_port_counter_read_errors", "Counter files that exist but could not be read (never exported as 0).", "device", "port")
	mNetErr        = desc("mu_netdev_errors_total", "Interface error counters from rtnetlink IFLA_STATS64.", "interface", "kind")
	mNetCarrier    = desc("mu_netdev_carrier_changes_total", "Carrier up/down transitions.", "interface")
	mNetCarrierUp  = desc("mu_netdev_carrier_up", "1 if the interface has carrier.", "interface")
	mNetLinkEvents = desc("mu_netdev_link_events_total", "Link notifications received by the rtnetlink subscription.", "interface")
	mThrottle      = desc("mu_cpu_throttle_events_total", "Thermal throttle events.", "cpu", "scope")
	mThrottleSec   = desc("mu_cpu_throttle_seconds_total", "Time spent thermally throttled.", "cpu", "scope")

	mProbeP99      = desc("mu_probe_latency_p99_seconds", "Empty-entry probe completion p99 over all followers in the window.")
	mPeerP99       = desc("mu_failslow_peer_latency_p99_seconds", "Probe completion p99 of one follower in the window.", "peer")
	mPeerBase      = desc("mu_failslow_peer_baseline_p99_seconds", "Baseline p99 of one follower (absent while learning).", "peer")
	mPeerRatio     = desc("mu_failslow_peer_slowdown_ratio", "Follower p99 / its baseline.", "peer")
	mPeerLevel     = desc("mu_failslow_peer_level", "0 not slow, 1 fail-slow warning, 2 fail-slow critical.", "peer")
	mCkReads       = desc("mu_logstore_verifier_checksum_reads_total", "Log ranges read back and checksum-verified.")
	mCkReadFails   = desc("mu_logstore_verifier_read_checksum_failures_total", "Read-back checksum mismatches (storage corruption).")
	mCkWrites      = desc("mu_logstore_verifier_checksum_writes_total", "Follower write checksums compared with the leader's.")
	mCkWriteFails  = desc("mu_logstore_verifier_write_checksum_failures_total", "Follower checksum differs from leader (in-flight corruption).")
	allMetricDescs = []*prometheus.Desc{mVerdict, mReasons, mSignalAvailable, mMemCE, mMemUE, mRasdaemon, mRasLookback,
		mDiskReadLat, mDiskWriteLat, mDiskP99, mDiskBase, mDiskRatio, mDiskReads, mDiskWrites, mDiskReadSec, mDiskWriteSec, mDiskIOLat,
		mSmartAttr, mSmartExit, mSmartPassed, mNVMeWarn, mNVMeMedia, mNVMeUsed, mSmartTemp,
		mRDMAState, mRDMATx, mRDMARx, mRDMASymbol, mRDMACounter, mRDMAHW, mRDMAReadErr,
		mNetErr, mNetCarrier, mNetCarrierUp, mNetLinkEvents, mThrottle, mThrottleSec,
		mProbeP99, mPeerP99, mPeerBase, mPeerRatio, mPeerLevel, mCkReads, mCkReadFails, mCkWrites, mCkWriteFails}
)

// Register adds the Monitor's metrics to reg (the caller's registry).
func (m *Monitor) Register(reg prometheus.Registerer) error {
	return reg.Register(&metrics{src: m.latest.Load})
}

func (c *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allMetricDescs {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *metrics) Collect(ch chan<- prometheus.Metric) {
	p := c.src()
	if p == nil {
		return // nothing collected yet: absent, not zero
	}
	r, s := p.report, p.snapshot
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	cnt := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	seconds := func(d *prometheus.Desc, ms uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(ms)/1e3, l...)
	}

	g(mVerdict, float64(r.Verdict))
	type rk struct{ row, sev string }
	byRow := map[rk]int{}
	for _, rs := range r.Reasons {
		byRow[rk{rs.Row, rs.Severity.String()}]++
	}
	for k, n := range byRow {
		g(mReasons, float64(n), k.row, k.sev)
	}
	seen := map[string]bool{}
	for _, st := range r.Signals {
		if !seen[st.Name] { // one series per signal name
			seen[st.Name] = true
			g(mSignalAvailable, b2f(st.Available), st.Name)
		}
	}

	for _, mc := range s.EDAC {
		if len(mc.DIMMs) == 0 {
			cnt(mMemCE, mc.CECount, mc.Name, "", "")
			cnt(mMemUE, mc.UECount, mc.Name, "", "")
		} else {
			cnt(mMemCE, mc.CENoInfo, mc.Name, "noinfo", "")
			cnt(mMemUE, mc.UENoInfo, mc.Name, "noinfo", "")
		}
		for _, d := range mc.DIMMs {
			cnt(mMemCE, d.CECount, mc.Name, d.Name, d.Label)
			cnt(mMemUE, d.UECount, mc.Name, d.Name, d.Label)
		}
	}
	if rc := s.Rasdaemon; rc != nil {
		g(mRasLookback, rc.Lookback.Seconds())
		for _, e := range []struct {
			table, typ string
			n          uint64
		}{
			{"mc_event", "corrected", rc.MemCorrected}, {"mc_event", "uncorrected", rc.MemUncorrected},
			{"mce_record", "corrected", rc.MCECorrected}, {"mce_record", "uncorrected", rc.MCEUncorrected},
			{"memory_failure_event", "", rc.MemoryFailures}, {"disk_errors", "", rc.DiskErrors},
			{"aer_event", "corrected", rc.AERCorrected}, {"aer_event", "uncorrected", rc.AERUncorrected},
		} {
			if containsString(rc.Tables, e.table) {
				g(mRasdaemon, float64(e.n), e.table, e.typ)
			}
		}
	}

	for _, d := range s.Disks {
		cnt(mDiskReads, d.ReadIOs, d.Device)
		cnt(mDiskWrites, d.WriteIOs, d.Device)
		seconds(mDiskReadSec, d.ReadTicksMs, d.Device)
		seconds(mDiskWriteSec, d.WriteTicks, d.Device)
	}
	for _, d := range r.Disks {
		g(mDiskReadLat, d.ReadLatency.Seconds(), d.Device)
		g(mDiskWriteLat, d.WriteLatency.Seconds(), d.Device)
		if d.P99 > 0 {
			g(mDiskP99, d.P99.Seconds(), d.Device, d.Source)
		}
		if d.Baseline > 0 {
			g(mDiskBase, d.Baseline.Seconds(), d.Device, d.Source)
		}
		g(mDiskRatio, d.Ratio, d.Device)
	}
	for _, h := range s.DiskLatency {
		buckets := map[float64]uint64{}
		var total uint64
		for i, n := range h.Buckets {
			total += n
			buckets[math.Ldexp(1, i+1)/1e6] = total // upper edge 2^(i+1) µs, cumulative
		}
		ch <- prometheus.MustNewConstHistogram(mDiskIOLat, total, float64(h.SumNs)/1e9, buckets, h.Device)
	}

	for _, d := range s.SMART {
		for id, v := range d.ATA {
			g(mSmartAttr, float64(v), d.Device, strconv.Itoa(id), ataAttrNames[id])
		}
		g(mSmartExit, float64(d.ExitStatus), d.Device)
		if d.Passed != nil {
			g(mSmartPassed, b2f(*d.Passed), d.Device)
		}
		if n := d.NVMe; n != nil {
			g(mNVMeWarn, float64(n.CriticalWarning), d.Device)
			cnt(mNVMeMedia, n.MediaErrors, d.Device)
			g(mNVMeUsed, float64(n.PercentageUsed)/100, d.Device)
		}
		if d.TemperatureC != nil {
			g(mSmartTemp, float64(*d.TemperatureC), d.Device)
		}
	}

	for _, p := range s.RDMAPorts {
		port := strconv.Itoa(p.Port)
		g(mRDMAState, b2f(isActive(p.State)), p.Device, port, p.State, p.Netdev)
		for name, v := range p.Counters {
			switch name {
			case "port_xmit_data":
				cnt(mRDMATx, v*4, p.Device, port)
			case "port_rcv_data":
				cnt(mRDMARx, v*4, p.Device, port)
			case "symbol_error":
				cnt(mRDMASymbol, v, p.Device, port)
			default:
				cnt(mRDMACounter, v, p.Device, port, name)
			}
		}
		for name, v := range p.HWCounters {
			cnt(mRDMAHW, v, p.Device, port, name)
		}
		g(mRDMAReadErr, float64(len(p.ReadErrors)), p.Device, port)
	}

	for _, n := range s.Netdevs {
		for _, e := range []struct {
			kind string
			v    uint64
		}{{"rx", n.RxErrors}, {"tx", n.TxErrors}, {"rx_crc", n.RxCRCErrors}, {"rx_frame", n.RxFrameErrors},
			{"rx_dropped", n.RxDropped}, {"tx_dropped", n.TxDropped}, {"tx_carrier", n.TxCarrierErr}} {
			cnt(mNetErr, e.v, n.Name, e.kind)
		}
		cnt(mNetCarrier, n.CarrierChanges, n.Name)
		g(mNetCarrierUp, b2f(n.Carrier), n.Name)
		cnt(mNetLinkEvents, n.LinkEvents, n.Name)
	}
	for _, t := range s.CPUThrottle {
		cpu := strconv.Itoa(t.CPU)
		cnt(mThrottle, t.CoreCount, cpu, "core")
		seconds(mThrottleSec, t.CoreTimeMs, cpu, "core")
		if t.HasPackageInfo {
			cnt(mThrottle, t.PackageCount, cpu, "package")
			seconds(mThrottleSec, t.PackageTimeMs, cpu, "package")
		}
	}

	if pr := s.Probe; pr != nil {
		if pr.Samples > 0 {
			g(mProbeP99, float64(pr.P99Ns)/1e9)
		}
		for _, ps := range pr.Peers {
			peer := strconv.Itoa(ps.Peer)
			if ps.Samples > 0 {
				g(mPeerP99, float64(ps.P99Ns)/1e9, peer)
			}
			if ps.BaselineP99Ns > 0 {
				g(mPeerBase, float64(ps.BaselineP99Ns)/1e9, peer)
			}
			g(mPeerRatio, ps.SlowdownRatio, peer)
			g(mPeerLevel, float64(max(ps.Level, Info)), peer)
		}
	}
	if ck := s.Checksum; ck != nil {
		cnt(mCkReads, ck.ReadsTotal)
		cnt(mCkReadFails, ck.ReadFailures)
		cnt(mCkWrites, ck.WritesTotal)
		cnt(mCkWriteFails, ck.WriteFailures)
	}
}

func isActive(state string) bool {
	// sysfs writes "4: ACTIVE"
	return len(state) >= 6 && state[len(state)-6:] == "ACTIVE"
}
