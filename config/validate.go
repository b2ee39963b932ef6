package config

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/hwmon"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/wal"
)

// lookupHost resolves a host name; a variable for tests.
var lookupHost = net.DefaultResolver.LookupHost

// ResolveTimeout bounds the name lookups of one Validate.
const ResolveTimeout = 5 * time.Second

// Validate checks the file's ranges and the rules between fields, then
// derives every component's settings (consensus, detector, permissions,
// fail-slow, hardware monitor) and checks those too, so that a config it
// accepts is not refused at start-up. `mu check-config` and `mu node` both
// call it. The error names the first wrong field by its YAML key path; it
// wraps ErrConfig and is a *FieldError.
func (c *Config) Validate() error {
	if err := c.validateFile(); err != nil {
		return err
	}
	return c.validateDerived()
}

func (c *Config) validateFile() error {
	fail := fieldErr
	// Generic rules first: every number finite, every duration bounded.
	if err := checkValues(reflect.ValueOf(*c), ""); err != nil {
		return err
	}
	if c.ClusterID == 0 {
		return fail("cluster_id", "missing or 0; give every member the same nonzero id (it keeps clusters apart)")
	}
	if c.ID == 0 {
		return fail("id", "missing or 0; node ids start at 1")
	}
	n := len(c.Peers)
	if n < MinClusterNodes || n > MaxClusterNodes {
		return fail("peers", "%d nodes; a cluster has %d to %d (this node included)", n, MinClusterNodes, MaxClusterNodes)
	}
	if len(c.Voters) > 0 {
		n = len(c.Voters)
		if n < MinClusterNodes {
			return fail("voters", "%d voters; a group needs at least %d", n, MinClusterNodes)
		}
		for i, v := range c.Voters {
			if !slices.ContainsFunc(c.Peers, func(p PeerConfig) bool { return p.ID == v }) {
				return fail(fmt.Sprintf("voters[%d]", i), "%d is not among peers[*].id", v)
			}
			if slices.Contains(c.Voters[:i], v) {
				return fail(fmt.Sprintf("voters[%d]", i), "%d is listed twice", v)
			}
		}
	}
	if n%2 == 0 && !c.AllowEvenMembers && len(c.Voters) > 0 {
		return fail("voters", "%d voters tolerate no more failures than %d, and an even split leaves no majority; use an odd count, or set allow_even_members: true", n, n-1)
	}
	if n%2 == 0 && !c.AllowEvenMembers {
		return fail("peers", "%d nodes tolerate no more failures than %d, and an even split leaves no majority; use an odd count, or set allow_even_members: true", n, n-1)
	}
	ids := map[rdma.NodeID]int{}
	selfFound := false
	for i, p := range c.Peers {
		at := fmt.Sprintf("peers[%d]", i)
		if p.ID == 0 {
			return fail(at+".id", "missing or 0; node ids start at 1")
		}
		if j, dup := ids[p.ID]; dup {
			return fail(at+".id", "%d is also peers[%d].id; ids must be unique", p.ID, j)
		}
		ids[p.ID] = i
		selfFound = selfFound || p.ID == c.ID
		for _, a := range []struct{ field, val string }{{at + ".address", p.Address}, {at + ".client_address", p.ClientAddress}} {
			if err := checkHostPort(a.val); err != nil {
				return fail(a.field, "%v", err)
			}
		}
	}
	if !selfFound {
		return fail("id", "%d is not among peers[*].id; list this node in peers too", c.ID)
	}
	if err := c.checkDistinctAddresses(); err != nil {
		return err
	}
	if c.MetricsAddress != "" {
		if err := checkHostPort(c.MetricsAddress); err != nil {
			return fail("metrics_address", "%v", err)
		}
	}

	r := c.RDMA
	switch {
	case r.Interface == "" && r.Device == "":
		return fail("rdma", "give interface, or device with gid_index")
	case r.Interface != "" && r.Device != "":
		return fail("rdma.device", "give interface or device, not both (interface %q, device %q)", r.Interface, r.Device)
	case r.Device != "" && r.GIDIndex == nil:
		return fail("rdma.gid_index", "required with rdma.device")
	case r.Interface != "" && r.GIDIndex != nil:
		return fail("rdma.gid_index", "only with rdma.device; with rdma.interface the GID is chosen by its IPv4 address")
	case r.GIDIndex != nil && (*r.GIDIndex < 0 || *r.GIDIndex > 255):
		return fail("rdma.gid_index", "%d is outside 0..255", *r.GIDIndex)
	case r.Port < 0 || r.Port > 255:
		// The verbs layer takes an 8-bit port number.
		return fail("rdma.port", "%d is outside 0..255 (0 means any port)", r.Port)
	}

	t := c.Timings
	switch {
	case t.PullscoreReadInterval.D() < time.Microsecond || t.PullscoreReadInterval.D() > 100*time.Millisecond:
		return fail("timings.pullscore_read_interval", "%v is outside 1us..100ms", t.PullscoreReadInterval)
	case t.PermissionTimeout.D() < time.Microsecond:
		return fail("timings.permission_timeout", "%v is shorter than 1us", t.PermissionTimeout)
	case t.ProbeInterval.D() < t.PullscoreReadInterval.D():
		return fail("timings.probe_interval", "%v is shorter than timings.pullscore_read_interval (%v)", t.ProbeInterval, t.PullscoreReadInterval)
	case t.HandshakeTimeout.D() <= 0:
		return fail("timings.handshake_timeout", "%v must be positive", t.HandshakeTimeout)
	case t.HandshakeTimeout.D() > time.Hour:
		// The node waits multiples of it while connecting.
		return fail("timings.handshake_timeout", "%v is longer than 1h", t.HandshakeTimeout)
	}

	d := c.Detector
	switch {
	case d.ScoreMax < 1 || d.ScoreMax > pullscore.MaxScore:
		return fail("detector.score_max", "%d is outside 1..%d", d.ScoreMax, pullscore.MaxScore)
	case d.FailBelow < 1 || d.FailBelow > d.ScoreMax:
		return fail("detector.fail_below", "%d is outside 1..detector.score_max (%d)", d.FailBelow, d.ScoreMax)
	case d.RecoverAbove < d.FailBelow || d.RecoverAbove >= d.ScoreMax:
		// The gap between the two is the hysteresis that stops flapping.
		return fail("detector.recover_above", "%d must be at least detector.fail_below (%d) and below detector.score_max (%d)", d.RecoverAbove, d.FailBelow, d.ScoreMax)
	}

	h := c.Hwmon
	pairs := []struct {
		warnField, critField string
		warn, crit           float64
	}{
		{"memory_ce_warn_per_day", "memory_ce_critical_per_day", h.MemoryCEWarnPerDay, h.MemoryCECriticalPerDay},
		{"disk_p99_warn_ratio", "disk_p99_critical_ratio", h.DiskP99WarnRatio, h.DiskP99CriticalRatio},
		{"reallocated_sectors_warn", "reallocated_sectors_critical", float64(h.ReallocatedSectorsWarn), float64(h.ReallocatedSectorsCritical)},
		{"probe_latency_warn", "probe_latency_critical", float64(h.ProbeLatencyWarn), float64(h.ProbeLatencyCritical)},
		{"probe_p99_warn_ratio", "probe_p99_critical_ratio", h.ProbeP99WarnRatio, h.ProbeP99CriticalRatio},
	}
	for _, p := range pairs {
		if p.warn <= 0 {
			return fail("hwmon."+p.warnField, "must be positive")
		}
		if p.crit <= p.warn {
			return fail("hwmon."+p.critField, "must exceed hwmon.%s", p.warnField)
		}
	}
	// Exact comparison: float64 of two nearby uint64 counts can be equal.
	if h.ReallocatedSectorsCritical <= h.ReallocatedSectorsWarn {
		return fail("hwmon.reallocated_sectors_critical", "must exceed hwmon.reallocated_sectors_warn")
	}
	for _, r := range []struct {
		field string
		ratio float64
	}{{"disk_p99_warn_ratio", h.DiskP99WarnRatio}, {"probe_p99_warn_ratio", h.ProbeP99WarnRatio}} {
		if r.ratio <= 1 {
			return fail("hwmon."+r.field, "%v must exceed 1 (a multiple of the baseline)", r.ratio)
		}
	}
	if h.LinkSymbolErrorsCriticalPerHr <= 0 {
		return fail("hwmon.link_symbol_errors_critical_per_hour", "must be positive")
	}
	if h.CollectInterval.D() < 10*time.Millisecond {
		// The collectors read sysfs and run smartctl.
		return fail("hwmon.collect_interval", "%v is shorter than 10ms", h.CollectInterval)
	}

	cl := c.Client
	switch {
	case cl.MaxConnections < 1 || cl.MaxConnections > maxClientConns:
		return fail("client.max_connections", "%d is outside 1..%d", cl.MaxConnections, maxClientConns)
	case cl.IdleTimeout.D() < time.Millisecond:
		return fail("client.idle_timeout", "%v is shorter than 1ms", cl.IdleTimeout)
	case cl.ReadTimeout.D() < time.Millisecond:
		return fail("client.read_timeout", "%v is shorter than 1ms", cl.ReadTimeout)
	case cl.WriteTimeout.D() < time.Millisecond:
		return fail("client.write_timeout", "%v is shorter than 1ms", cl.WriteTimeout)
	}

	if err := c.checkSecurity(); err != nil {
		return err
	}

	if c.PollMode != PollSpin && c.PollMode != PollSpinYield && c.PollMode != PollIdleSleep {
		return fail("poll_mode", "%q is not %q, %q or %q", c.PollMode, PollSpin, PollSpinYield, PollIdleSleep)
	}
	if c.LogSizeBytes < minLogSizeBytes || c.LogSizeBytes > maxLogSizeBytes || c.LogSizeBytes%cacheLineBytes != 0 {
		return fail("log_size_bytes", "%d must be a multiple of %d between %d and %d", c.LogSizeBytes, cacheLineBytes, minLogSizeBytes, uint64(maxLogSizeBytes))
	}
	if c.AppliedLogMaxBytes < minAppliedLogBytes || c.AppliedLogMaxBytes > maxAppliedLogBytes {
		return fail("applied_log_max_bytes", "%d is outside %d..%d", c.AppliedLogMaxBytes, minAppliedLogBytes, uint64(maxAppliedLogBytes))
	}
	return c.checkDurability()
}

// checkDurability checks durability, data_dir and initial_cluster_state.
func (c *Config) checkDurability() error {
	d, err := consensus.ParseDurability(c.Durability)
	if err != nil {
		return fieldErr("durability", "%q is not memory, async or sync", c.Durability)
	}
	switch {
	case d == consensus.DurabilityMemory && c.DataDir != "":
		return fieldErr("data_dir", "only with durability async or sync (durability is memory: nothing is written)")
	case d != consensus.DurabilityMemory && c.DataDir == "":
		return fieldErr("data_dir", "required with durability %v: the directory of this node's write-ahead log", d)
	}
	if c.InitialClusterState != ClusterStateNew && c.InitialClusterState != ClusterStateExisting {
		return fieldErr("initial_cluster_state", "%q is not %q or %q", c.InitialClusterState, ClusterStateNew, ClusterStateExisting)
	}
	return nil
}

// DurableStorage opens the node's journal storage over data_dir (sync
// mode flushes as soon as records wait; fdatasync into zero-filled
// segments, the method docs/durability.md measured best), or returns nil
// with durability memory. Set it as the consensus config's Storage; close
// it after the replica.
func (c *Config) DurableStorage() (*consensus.WALStorage, error) {
	d, err := consensus.ParseDurability(c.Durability)
	if err != nil || d == consensus.DurabilityMemory {
		return nil, err
	}
	mode := wal.ModeSync
	if d == consensus.DurabilityAsync {
		mode = wal.ModeAsync
	}
	return consensus.NewWALStorage(wal.Options{Dir: c.Path(c.DataDir), Mode: mode, Method: wal.SyncFdatasync, PreallocZeros: true})
}

var durationType = reflect.TypeFor[Duration]()

// checkValues walks every field: floats must be finite (NaN passes every
// comparison test and would reach the fail-slow tracker) and durations at
// most MaxDuration.
func checkValues(v reflect.Value, path string) error {
	if v.Type() == durationType {
		if d := time.Duration(v.Int()); d > MaxDuration {
			return fieldErr(path, "%v is longer than %v", d, MaxDuration)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return fieldErr(path, "%v is not a finite number", f)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			sub := name
			if path != "" {
				sub = path + "." + name
			}
			if err := checkValues(v.Field(i), sub); err != nil {
				return err
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if err := checkValues(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return checkValues(v.Elem(), path)
		}
	}
	return nil
}

// checkDistinctAddresses resolves every address and refuses two fields
// that reach the same IP and port: "localhost:7101" and "127.0.0.1:7101"
// are one listener, and the second node to bind it fails, or worse, a
// node dials itself.
func (c *Config) checkDistinctAddresses() error {
	ctx, cancel := context.WithTimeout(context.Background(), ResolveTimeout)
	defer cancel()
	owner := map[string]string{} // "ip:port" -> field
	for i, p := range c.Peers {
		at := fmt.Sprintf("peers[%d]", i)
		for _, a := range []struct{ field, val string }{{at + ".address", p.Address}, {at + ".client_address", p.ClientAddress}} {
			host, port, _ := net.SplitHostPort(a.val)
			ips, err := resolve(ctx, host)
			if err != nil {
				return fieldErr(a.field, "%q does not resolve: %v", host, err)
			}
			for _, ip := range ips {
				if ip.IsUnspecified() {
					return fieldErr(a.field, "%s is the wildcard address; give one that peers and clients can dial", a.val)
				}
			}
			seenHere := map[string]bool{}
			for _, ip := range ips {
				key := net.JoinHostPort(ip.String(), port)
				if seenHere[key] {
					continue
				}
				seenHere[key] = true
				if other, dup := owner[key]; dup {
					if key == a.val {
						return fieldErr(a.field, "%s is also %s", a.val, other)
					}
					return fieldErr(a.field, "%s is also %s (both reach %s)", a.val, other, key)
				}
				owner[key] = a.field
			}
		}
	}
	return nil
}

func resolve(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	addrs, err := lookupHost(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return nil, errors.New(dnsErr.Err)
		}
		return nil, err
	}
	var ips []net.IP
	for _, a := range addrs {
		// Zoned IPv6 literals come back as "fe80::1%eth0".
		a, _, _ = strings.Cut(a, "%")
		if ip := net.ParseIP(a); ip != nil {
			ips = append(ips, ip)
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("no addresses")
	}
	return ips, nil
}

func checkHostPort(s string) error {
	if s == "" {
		return errors.New("required (host:port)")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", s, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port %q is not in 1..65535", s, port)
	}
	return nil
}

// Consensus derives the replica's settings from the file.
func (c *Config) Consensus() consensus.Config {
	cc := consensus.DefaultConfig()
	for _, p := range c.Peers {
		cc.Members = append(cc.Members, p.ID)
	}
	cc.Voters = slices.Clone(c.Voters)
	read := int64(c.Timings.PullscoreReadInterval.D())
	cc.PullScore.ReadIntervalNs = read
	// The own counter must move at least twice per peer sample.
	cc.PullScore.BeatIntervalNs = min(cc.PullScore.BeatIntervalNs, read/2)
	cc.PullScore.ScoreMax = c.Detector.ScoreMax
	cc.PullScore.FailBelow = c.Detector.FailBelow
	cc.PullScore.RecoverAbove = c.Detector.RecoverAbove
	cc.ElectionTimeoutNs = int64(c.Timings.PermissionTimeout.D())
	// Layer 2: the leader's probe cadence and its per-follower fail-slow
	// thresholds (consensus keeps the tracker; the hwmon Monitor reads it).
	cc.ProbeIntervalNs = int64(c.Timings.ProbeInterval.D())
	cc.FailSlow = hwmon.DefaultFailSlowConfig()
	cc.FailSlow.WarnRatio = c.Hwmon.ProbeP99WarnRatio
	cc.FailSlow.CriticalRatio = c.Hwmon.ProbeP99CriticalRatio
	probe := cc
	probe.LogSlots = 16
	stride := consensus.NewLayout(probe).SlotStrideBytes
	cc.LogSlots = int(c.LogSizeBytes / stride)
	cc.MaxInflightSlots = min(cc.MaxInflightSlots, cc.LogSlots/2)
	cc.ReadWindowSlots = min(cc.ReadWindowSlots, cc.LogSlots/2)
	// Storage is the node's to open (DurableStorage).
	cc.Durability, _ = consensus.ParseDurability(c.Durability)
	cc.NewCluster = c.InitialClusterState == ClusterStateNew
	return cc
}

// ApplyHwmon sets the file's hwmon section into hc.
func (c *Config) ApplyHwmon(hc *hwmon.Config) {
	h := c.Hwmon
	t := &hc.Thresholds
	t.MemoryCEWarnPerDay = h.MemoryCEWarnPerDay
	t.MemoryCECriticalPerDay = h.MemoryCECriticalPerDay
	t.DiskP99WarnRatio = h.DiskP99WarnRatio
	t.DiskP99CriticalRatio = h.DiskP99CriticalRatio
	t.ReallocatedWarn = h.ReallocatedSectorsWarn
	t.ReallocatedCritical = h.ReallocatedSectorsCritical
	t.SymbolErrorCriticalPerHour = h.LinkSymbolErrorsCriticalPerHr
	t.ProbeLatencyWarn = h.ProbeLatencyWarn.D()
	t.ProbeLatencyCritical = h.ProbeLatencyCritical.D()
	hc.FailSlow.WarnRatio = h.ProbeP99WarnRatio
	hc.FailSlow.CriticalRatio = h.ProbeP99CriticalRatio
	hc.Interval = h.CollectInterval.D()
}

// MaxRequestBytes is the largest client request the endpoint reads: a
// proposal of the largest size the replica accepts, plus its type byte.
func (c *Config) MaxRequestBytes() int {
	cc := c.Consensus()
	return cc.MaxProposalBytes() + 1
}

// derivedFields maps a component's field name, as its Validate names it,
// to the file's key that sets it.
var derivedFields = []struct{ component, field string }{
	{"Members", "peers"},
	{"LogSlots", "log_size_bytes"},
	{"MaxInflightSlots", "log_size_bytes"},
	{"ReadWindowSlots", "log_size_bytes"},
	{"ElectionTimeoutNs", "timings.permission_timeout"},
	{"ProbeIntervalNs", "timings.probe_interval"},
	{"ReadIntervalNs", "timings.pullscore_read_interval"},
	{"BeatIntervalNs", "timings.pullscore_read_interval"},
	{"ScoreMax", "detector.score_max"},
	{"FailBelow", "detector.fail_below"},
	{"RecoverAbove", "detector.recover_above"},
	{"FailSlow.WarnRatio", "hwmon.probe_p99_warn_ratio"},
	{"FailSlow.CriticalRatio", "hwmon.probe_p99_critical_ratio"},
	{"MemoryCEWarnPerDay", "hwmon.memory_ce_warn_per_day"},
	{"MemoryCECriticalPerDay", "hwmon.memory_ce_critical_per_day"},
	{"DiskP99WarnRatio", "hwmon.disk_p99_warn_ratio"},
	{"DiskP99CriticalRatio", "hwmon.disk_p99_critical_ratio"},
	{"ReallocatedWarn", "hwmon.reallocated_sectors_warn"},
	{"ReallocatedCritical", "hwmon.reallocated_sectors_critical"},
	{"SymbolErrorCriticalPerHour", "hwmon.link_symbol_errors_critical_per_hour"},
	{"ProbeLatencyWarn", "hwmon.probe_latency_warn"},
	{"ProbeLatencyCritical", "hwmon.probe_latency_critical"},
	{"Interval", "hwmon.collect_interval"},
}

// validateDerived runs the components' own checks on the settings the
// node will hand them, and names the file's key behind a refusal.
func (c *Config) validateDerived() error {
	cc := c.Consensus()
	if cc.Durability != consensus.DurabilityMemory {
		cc.Storage = &consensus.WALStorage{} // the node opens the real one
	}
	if err := cc.Validate(); err != nil {
		return derivedErr("consensus", err)
	}
	hc := hwmon.DefaultConfig()
	c.ApplyHwmon(&hc)
	if err := hc.Validate(); err != nil {
		return derivedErr("hwmon", err)
	}
	return nil
}

func derivedErr(component string, err error) error {
	// The component names the wrong field first, then perhaps others the
	// rule compares it with: the earliest name wins.
	msg := err.Error()
	best, field := len(msg), ""
	for _, d := range derivedFields {
		for _, pat := range []string{"." + d.component + " ", " " + d.component + " ", "." + d.component + ":"} {
			if i := strings.Index(msg, pat); i >= 0 && i < best {
				best, field = i, d.field
			}
		}
	}
	if field != "" {
		return fieldErr(field, "refused by %s: %v", component, err)
	}
	// A rule of a component that no key maps to: name the component.
	return fieldErr(component, "derived settings refused: %v", err)
}

// Warnings lists legal but doubtful choices.
func (c *Config) Warnings() []string {
	var w []string
	if len(c.Voters) == 0 && len(c.Peers)%2 == 0 {
		w = append(w, fmt.Sprintf("peers: %d nodes tolerate no more failures than %d; an odd count is recommended", len(c.Peers), len(c.Peers)-1))
	}
	if n := len(c.Voters); n%2 == 0 && n > 0 {
		w = append(w, fmt.Sprintf("voters: %d voters tolerate no more failures than %d; an odd count is recommended", n, n-1))
	}
	if c.PollMode == PollSpin && c.Timings.PullscoreReadInterval.D() >= time.Millisecond {
		w = append(w, "poll_mode: spin burns a core although timings.pullscore_read_interval is a millisecond or more; spin-yield is enough")
	}
	if c.InitialClusterState == ClusterStateNew && c.Durability != consensus.DurabilityMemory.String() {
		w = append(w, "initial_cluster_state: new lets this node vote with an empty data_dir; set it back to existing once the cluster has started, or a node that loses its disk would vote with an empty log")
	}
	if c.Security.Insecure {
		w = append(w, InsecureWarning)
	} else if cr, err := c.Credentials(); err == nil && time.Until(cr.NotAfter) < 30*24*time.Hour {
		w = append(w, fmt.Sprintf("security.cert: expires %s; issue a new one (docs/security.md)", cr.NotAfter.Format(time.RFC3339)))
	}
	return w
}

// InsecureWarning is what a node with security.insecure says at every
// start.
const InsecureWarning = "security.insecure: true: INSECURE MODE: the bootstrap and client listeners accept ANY peer or client on the network without authentication; anyone who can reach them can join the cluster's RDMA connections, write its log and submit commands"

// Members returns the member ids in file order.
func (c *Config) Members() []rdma.NodeID {
	var ids []rdma.NodeID
	for _, p := range c.Peers {
		ids = append(ids, p.ID)
	}
	return slices.Clone(ids)
}

// Path resolves a path from the file against the file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

func (c *Config) checkSecurity() error {
	s := c.Security
	if s.Insecure {
		if s.CA != "" || s.Cert != "" || s.Key != "" {
			return fieldErr("security.insecure", "true together with security.ca/cert/key; choose one")
		}
		return nil
	}
	for _, f := range []struct{ field, val string }{{"ca", s.CA}, {"cert", s.Cert}, {"key", s.Key}} {
		if f.val == "" {
			return fieldErr("security."+f.field, "required (a PEM file; `mu certs` makes them), or set security.insecure: true to run without authentication")
		}
	}
	_, err := c.Credentials()
	return err
}

// Credentials loads the node's TLS credentials and checks that they are
// this node's: nil with security.insecure.
func (c *Config) Credentials() (*clustertls.Credentials, error) {
	s := c.Security
	if s.Insecure {
		return nil, nil
	}
	var pem [3][]byte
	for i, f := range []struct{ field, val string }{{"ca", s.CA}, {"cert", s.Cert}, {"key", s.Key}} {
		b, err := os.ReadFile(c.Path(f.val))
		if err != nil {
			return nil, fieldErr("security."+f.field, "%v", err)
		}
		pem[i] = b
	}
	cr, err := clustertls.Load(pem[0], clustertls.PEM{Cert: pem[1], Key: pem[2]})
	if err != nil {
		return nil, fieldErr("security.cert", "%v", err)
	}
	if cr.Self != clustertls.NodeIdentity(c.ID) {
		return nil, fieldErr("security.cert", "the certificate is %v's, this is node %d", cr.Self, c.ID)
	}
	return cr, nil
}
