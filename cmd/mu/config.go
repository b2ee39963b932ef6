package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rdmaconsensus/mu/rdma"
)

// ErrConfig marks every configuration error, for errors.Is.
var ErrConfig = errors.New("mu: config")

// Config is the `mu node` configuration file.
type Config struct {
	ID        rdma.NodeID `yaml:"id"`         // this node
	ClusterID uint64      `yaml:"cluster_id"` // peers in another cluster are refused
	// Peers lists every member, this node included.
	Peers    []PeerConfig   `yaml:"peers"`
	RDMA     RDMAConfig     `yaml:"rdma"`
	Timings  TimingsConfig  `yaml:"timings"`
	Detector DetectorConfig `yaml:"detector"`
	Hwmon    HwmonConfig    `yaml:"hwmon"`
	// PollMode is how the replica's driver waits: PollSpin owns a core,
	// PollSpinYield yields between polls when cores are scarce, and
	// PollIdleSleep sleeps until the next wake-up the replica asks for
	// unless proposals are in flight (for hosts where several replicas
	// share too few cores for any of them to spin, such as an emulated VM).
	PollMode string `yaml:"poll_mode"`
	// LogSizeBytes is the replicated log's size in the registered region.
	LogSizeBytes uint64 `yaml:"log_size_bytes"`
}

// PeerConfig is one member of the cluster.
type PeerConfig struct {
	ID            rdma.NodeID `yaml:"id"`
	Address       string      `yaml:"address"`        // host:port of the RDMA bootstrap listener
	ClientAddress string      `yaml:"client_address"` // host:port where clients submit commands
}

// RDMAConfig chooses the RDMA port: either Interface (device and RoCE v2
// GID found from its IPv4 address) or Device with GIDIndex.
type RDMAConfig struct {
	Interface string `yaml:"interface"`
	Device    string `yaml:"device"`
	Port      int    `yaml:"port"`      // 1-based; 0 means the first that fits
	GIDIndex  *int   `yaml:"gid_index"` // required with Device
}

// Spec converts to the discovery request.
func (r RDMAConfig) Spec() rdma.DeviceSpec {
	s := rdma.DeviceSpec{Interface: r.Interface, Device: r.Device, Port: r.Port, GIDIndex: rdma.AutoGIDIndex}
	if r.GIDIndex != nil {
		s.GIDIndex = *r.GIDIndex
	}
	return s
}

// TimingsConfig holds the protocol's clocks.
type TimingsConfig struct {
	// PullscoreReadInterval is how often each peer's heartbeat counter is
	// read; detection takes a few of these.
	PullscoreReadInterval Duration `yaml:"pullscore_read_interval"`
	// PermissionTimeout bounds a permission request before the fallback
	// (queue-pair reset) is used.
	PermissionTimeout Duration `yaml:"permission_timeout"`
	// ProbeInterval is the leader's empty-entry probe cadence.
	ProbeInterval Duration `yaml:"probe_interval"`
	// HandshakeTimeout bounds one bootstrap handshake with a peer.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
}

// DetectorConfig is the pull-score detector's scale.
type DetectorConfig struct {
	ScoreMax     int `yaml:"score_max"`     // score saturates here
	FailBelow    int `yaml:"fail_below"`    // a peer whose score drops below this is failed
	RecoverAbove int `yaml:"recover_above"` // and alive again only above this
}

// HwmonConfig holds the arbiter's thresholds (design notes, section 4).
type HwmonConfig struct {
	MemoryCEWarnPerDay            float64  `yaml:"memory_ce_warn_per_day"`
	MemoryCECriticalPerDay        float64  `yaml:"memory_ce_critical_per_day"`
	DiskP99WarnRatio              float64  `yaml:"disk_p99_warn_ratio"` // x own baseline
	DiskP99CriticalRatio          float64  `yaml:"disk_p99_critical_ratio"`
	ReallocatedSectorsWarn        uint64   `yaml:"reallocated_sectors_warn"`
	ReallocatedSectorsCritical    uint64   `yaml:"reallocated_sectors_critical"`
	LinkSymbolErrorsCriticalPerHr float64  `yaml:"link_symbol_errors_critical_per_hour"`
	ProbeLatencyWarn              Duration `yaml:"probe_latency_warn"`
	ProbeLatencyCritical          Duration `yaml:"probe_latency_critical"`
	ProbeP99WarnRatio             float64  `yaml:"probe_p99_warn_ratio"` // fail-slow, x follower baseline
	ProbeP99CriticalRatio         float64  `yaml:"probe_p99_critical_ratio"`
	CollectInterval               Duration `yaml:"collect_interval"`
}

// Poll modes.
const (
	PollSpin      = "spin"
	PollSpinYield = "spin-yield"
	PollIdleSleep = "idle-sleep"
)

// Cluster size bounds: Mu replicates across 3 to 7 nodes.
const (
	minClusterNodes = 3
	maxClusterNodes = 7
	cacheLineBytes  = 64
	minLogSizeBytes = 64 << 10
	maxLogSizeBytes = 1 << 40
)

// DefaultConfig returns the defaults a file overrides: the design notes'
// figures for timings and thresholds; no identity, peers or RDMA port, which
// every file must give.
func DefaultConfig() Config {
	return Config{
		Timings: TimingsConfig{
			PullscoreReadInterval: Duration(40 * time.Microsecond),
			PermissionTimeout:     Duration(2 * time.Millisecond),
			ProbeInterval:         Duration(10 * time.Millisecond),
			HandshakeTimeout:      Duration(rdma.DefaultHandshakeTimeout),
		},
		Detector: DetectorConfig{ScoreMax: 15, FailBelow: 2, RecoverAbove: 6},
		Hwmon: HwmonConfig{
			MemoryCEWarnPerDay:            10,
			MemoryCECriticalPerDay:        100,
			DiskP99WarnRatio:              5,
			DiskP99CriticalRatio:          10,
			ReallocatedSectorsWarn:        10,
			ReallocatedSectorsCritical:    100,
			LinkSymbolErrorsCriticalPerHr: 1000,
			ProbeLatencyWarn:              Duration(10 * time.Millisecond),
			ProbeLatencyCritical:          Duration(50 * time.Millisecond),
			ProbeP99WarnRatio:             5,
			ProbeP99CriticalRatio:         10,
			CollectInterval:               Duration(time.Second),
		},
		PollMode:     PollSpin,
		LogSizeBytes: 64 << 20,
	}
}

// Duration is a time.Duration written as a Go duration string ("40us",
// "2ms"). Bare numbers are refused: their unit would be a guess.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return fmt.Errorf("%q is not a duration string with a unit, like \"40us\"", n.Value)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"40us\" or \"2ms\"", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// LoadConfig reads, decodes and validates a config file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a config over DefaultConfig and validates it. Unknown
// keys, duplicate keys and values of the wrong type are errors naming the
// field by its path, e.g. "peers[2].address".
func ParseConfig(data []byte) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if doc.Kind == 0 {
		return Config{}, fmt.Errorf("%w: file is empty", ErrConfig)
	}
	// Walk first: yaml's own errors give a line but not the field's path.
	if err := checkShape(&doc, reflect.TypeFor[Config](), ""); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkShape checks node against type t: every key names a field, no key
// repeats, and every scalar decodes into its field's type.
func checkShape(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	where := func() string {
		if path == "" {
			return fmt.Sprintf("(line %d)", n.Line)
		}
		return fmt.Sprintf("%s (line %d)", path, n.Line)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // leaves the default
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || t.Kind() != reflect.Struct && t.Kind() != reflect.Slice && t.Kind() != reflect.Pointer {
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: expected a single value, got a %s", where(), kindName(n.Kind))
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return fmt.Errorf("%s: %s", where(), cleanYAMLError(err, n, t))
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return checkShape(n, t.Elem(), path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%s: expected a list, got a %s", where(), kindName(n.Kind))
		}
		for i, item := range n.Content {
			if err := checkShape(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: expected a mapping, got a %s", where(), kindName(n.Kind))
	}
	fields := map[string]reflect.StructField{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f
		names = append(names, name)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		if line, dup := seen[k.Value]; dup {
			return fmt.Errorf("%s (line %d): given twice (first at line %d)", sub, k.Line, line)
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("%s (line %d): unknown field (known: %s)", sub, k.Line, strings.Join(names, ", "))
		}
		if err := checkShape(v, f.Type, sub); err != nil {
			return err
		}
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "node"
}

// cleanYAMLError states a scalar decoding failure without yaml's prefix.
func cleanYAMLError(err error, n *yaml.Node, t reflect.Type) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%q is not a valid %s", n.Value, typeName(t))
	}
	return err.Error()
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return fmt.Sprintf("unsigned integer (%d bits)", t.Bits())
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean (true or false)"
	}
	return t.String()
}

// Validate checks ranges and the rules between fields. The error names the
// first wrong field; it wraps ErrConfig.
func (c *Config) Validate() error {
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	n := len(c.Peers)
	if n < minClusterNodes || n > maxClusterNodes {
		return fail("peers", "%d nodes; a cluster has %d to %d (this node included)", n, minClusterNodes, maxClusterNodes)
	}
	ids := map[rdma.NodeID]int{}
	addrs := map[string]string{}
	selfFound := false
	for i, p := range c.Peers {
		at := fmt.Sprintf("peers[%d]", i)
		if j, dup := ids[p.ID]; dup {
			return fail(at+".id", "%d is also peers[%d].id; ids must be unique", p.ID, j)
		}
		ids[p.ID] = i
		selfFound = selfFound || p.ID == c.ID
		for _, a := range []struct{ field, val string }{{at + ".address", p.Address}, {at + ".client_address", p.ClientAddress}} {
			if err := checkHostPort(a.val); err != nil {
				return fail(a.field, "%v", err)
			}
			if other, dup := addrs[a.val]; dup {
				return fail(a.field, "%s is also %s", a.val, other)
			}
			addrs[a.val] = a.field
		}
	}
	if !selfFound {
		return fail("id", "%d is not among peers[*].id; list this node in peers too", c.ID)
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
	case r.GIDIndex != nil && *r.GIDIndex < 0:
		return fail("rdma.gid_index", "%d is negative", *r.GIDIndex)
	case r.Port < 0:
		return fail("rdma.port", "%d is negative (0 means any port)", r.Port)
	}

	t := c.Timings
	switch {
	case t.PullscoreReadInterval.D() < time.Microsecond || t.PullscoreReadInterval.D() > 100*time.Millisecond:
		return fail("timings.pullscore_read_interval", "%v is outside 1us..100ms", t.PullscoreReadInterval)
	case t.PermissionTimeout.D() <= 0:
		return fail("timings.permission_timeout", "%v must be positive", t.PermissionTimeout)
	case t.ProbeInterval.D() < t.PullscoreReadInterval.D():
		return fail("timings.probe_interval", "%v is shorter than timings.pullscore_read_interval (%v)", t.ProbeInterval, t.PullscoreReadInterval)
	case t.HandshakeTimeout.D() <= 0:
		return fail("timings.handshake_timeout", "%v must be positive", t.HandshakeTimeout)
	}

	d := c.Detector
	switch {
	case d.ScoreMax < 1:
		return fail("detector.score_max", "%d must be at least 1", d.ScoreMax)
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
	if h.CollectInterval.D() <= 0 {
		return fail("hwmon.collect_interval", "must be positive")
	}

	if c.PollMode != PollSpin && c.PollMode != PollSpinYield && c.PollMode != PollIdleSleep {
		return fail("poll_mode", "%q is not %q, %q or %q", c.PollMode, PollSpin, PollSpinYield, PollIdleSleep)
	}
	if c.LogSizeBytes < minLogSizeBytes || c.LogSizeBytes > maxLogSizeBytes || c.LogSizeBytes%cacheLineBytes != 0 {
		return fail("log_size_bytes", "%d must be a multiple of %d between %d and %d", c.LogSizeBytes, cacheLineBytes, minLogSizeBytes, maxLogSizeBytes)
	}
	return nil
}

// Warnings lists legal but doubtful choices.
func (c *Config) Warnings() []string {
	var w []string
	if len(c.Peers)%2 == 0 {
		w = append(w, fmt.Sprintf("peers: %d nodes tolerate no more failures than %d; an odd count is recommended", len(c.Peers), len(c.Peers)-1))
	}
	if c.PollMode == PollSpin && c.Timings.PullscoreReadInterval.D() >= time.Millisecond {
		w = append(w, "poll_mode: spin burns a core although timings.pullscore_read_interval is a millisecond or more; spin-yield is enough")
	}
	return w
}

// Self returns this node's entry in Peers.
func (c *Config) Self() PeerConfig {
	i := slices.IndexFunc(c.Peers, func(p PeerConfig) bool { return p.ID == c.ID })
	if i < 0 {
		panic("mu: config: Self on a config that did not validate")
	}
	return c.Peers[i]
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
