package hwmon

import "time"

// Snapshot is everything the collectors read at one instant. Counters are
// raw cumulative values as the kernel or device reports them; the Arbiter
// turns them into windowed rates and notices when they go backwards.
type Snapshot struct {
	At      time.Time
	Signals []SignalStatus

	EDAC        []EDACController
	Rasdaemon   *RasdaemonCounts
	SMART       []SMARTDevice
	Disks       []DiskStat
	DiskLatency []DiskLatencyHistogram // from eBPF, when permitted
	RDMAPorts   []RDMAPort
	Netdevs     []NetdevStats
	CPUThrottle []CPUThrottle
	Probe       *ProbeSummary   // from FailSlow
	Checksum    *ChecksumCounts // from Verifier
}

// EDACController is one memory controller under
// /sys/devices/system/edac/mc/mcN.
type EDACController struct {
	Name     string // "mc0"
	CECount  uint64 // ce_count: corrected errors since boot or reset
	UECount  uint64 // ue_count
	CENoInfo uint64 // ce_noinfo_count: corrected errors not attributed to a DIMM
	UENoInfo uint64 // ue_noinfo_count
	DIMMs    []EDACDIMM
}

// EDACDIMM is one dimmN (or legacy rankN) entry of a controller.
type EDACDIMM struct {
	Name    string // "dimm0" or "rank0"
	Label   string // dimm_label, e.g. "CPU_SrcID#0_Ha#0_Chan#0_DIMM#0"
	CECount uint64 // dimm_ce_count
	UECount uint64 // dimm_ue_count
}

// RasdaemonCounts are event counts from rasdaemon's SQLite database within
// Lookback before the snapshot time, plus whole-table totals.
type RasdaemonCounts struct {
	Lookback time.Duration
	Tables   []string // event tables found in sqlite_master

	MemCorrected       uint64 // mc_event rows of type Corrected (sum of err_count)
	MemUncorrected     uint64 // mc_event rows of type Uncorrected or Fatal
	MCECorrected       uint64 // mce_record rows without the UC status bit
	MCEUncorrected     uint64 // mce_record rows with MCi_STATUS.UC set
	MemoryFailures     uint64 // memory_failure_event rows (poisoned pages handled)
	DiskErrors         uint64 // disk_errors rows
	AERCorrected       uint64 // aer_event rows of type Corrected
	AERUncorrected     uint64 // aer_event rows of type Uncorrected (Non-)Fatal
	UnparsedTimestamps uint64 // rows whose timestamp could not be parsed (not counted above)

	// WorstCELabel is the DIMM label with the most corrected errors in the
	// lookback, for the operator who must replace it.
	WorstCELabel string
	WorstCECount uint64
}

// SMARTDevice is what `smartctl -j -a DEV` said about one device.
type SMARTDevice struct {
	Device     string
	Protocol   string // "ATA", "NVMe", "SCSI"
	Model      string
	Serial     string
	ExitStatus int      // smartctl's exit status bitmask
	ExitBits   []string // decoded bits of ExitStatus
	Passed     *bool    // smart_status.passed, when reported

	// ATA attributes by id (raw values): 5 reallocated sectors, 187 reported
	// uncorrectable, 197 current pending, 198 offline uncorrectable,
	// 199 UDMA CRC errors. Absent ids are not in the map.
	ATA map[int]uint64

	NVMe *NVMeHealth

	TemperatureC *int64
}

// NVMeHealth is the NVMe SMART/health information log.
type NVMeHealth struct {
	CriticalWarning uint64 // bitmask, see nvmeCriticalWarningBits
	MediaErrors     uint64
	PercentageUsed  uint64 // may exceed 100
	TemperatureC    int64
}

// DiskStat is one line of /sys/block/<dev>/stat (cumulative).
type DiskStat struct {
	Device      string
	ReadIOs     uint64
	ReadTicksMs uint64
	WriteIOs    uint64
	WriteTicks  uint64 // milliseconds
	InFlight    uint64
	IOTicksMs   uint64
}

// DiskLatencyHistogram is a cumulative per-device histogram of block I/O
// completion latency: Buckets[i] counts I/Os with latency in
// [2^i, 2^(i+1)) microseconds (bucket 0 also holds < 1 µs).
type DiskLatencyHistogram struct {
	Device  string // whole disk name under /sys/block
	Buckets []uint64
	SumNs   uint64 // total latency of the I/Os in Buckets
}

// RDMAPort is one port of an RDMA device.
type RDMAPort struct {
	Device     string
	Port       int
	State      string // "4: ACTIVE"
	PhysState  string // "5: LinkUp"
	LinkLayer  string // "InfiniBand" or "Ethernet"
	Netdev     string // mapped network interface, if any
	Counters   map[string]uint64
	HWCounters map[string]uint64
	// ReadErrors lists counter files that exist but could not be read or
	// parsed; they are absent from Counters (never reported as 0).
	ReadErrors map[string]string
}

// NetdevStats are one interface's error counters and carrier history.
type NetdevStats struct {
	Name           string
	Index          int
	OperState      string
	Carrier        bool
	CarrierChanges uint64
	RxErrors       uint64
	TxErrors       uint64
	RxCRCErrors    uint64
	RxFrameErrors  uint64
	RxDropped      uint64
	TxDropped      uint64
	TxCarrierErr   uint64
	// RDMADevice is the RDMA device on this interface, if any (rdmamap).
	RDMADevice string
	// LinkEvents counts RTM_NEWLINK/RTM_DELLINK notifications seen by the
	// subscription since the collector started (0 when not subscribed).
	LinkEvents uint64
}

// CPUThrottle is one CPU's thermal_throttle counters.
type CPUThrottle struct {
	CPU            int
	CoreCount      uint64
	PackageCount   uint64
	CoreTimeMs     uint64
	PackageTimeMs  uint64
	HasPackageInfo bool
}

// ChecksumCounts are Verifier's cumulative counters.
type ChecksumCounts struct {
	ReadsTotal    uint64
	ReadFailures  uint64
	WritesTotal   uint64
	WriteFailures uint64
}
