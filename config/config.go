// Package config is the `mu node` configuration file: its schema and
// defaults, a strict YAML decoder whose errors name the field by its key
// path, and Validate, the one check that both `mu check-config` and node
// start-up run (it also derives and checks every component's settings, so a
// file that passes is not refused later).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/bootstrap"
)

// ErrConfig marks every configuration error, for errors.Is.
var ErrConfig = errors.New("mu: config")

// FieldError is a validation error about one field, named by its YAML key
// path ("peers[2].address", "timings.handshake_timeout").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%v: %s: %s", ErrConfig, e.Field, e.Msg) }

// Unwrap makes errors.Is(err, ErrConfig) hold.
func (e *FieldError) Unwrap() error { return ErrConfig }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Config is the `mu node` configuration file.
type Config struct {
	ID        rdma.NodeID `yaml:"id"`         // this node; 1 or more
	ClusterID uint64      `yaml:"cluster_id"` // required, not 0: peers in another cluster are refused
	// Peers lists every member, this node included: the voters and the
	// learners (spares that replicate and can be promoted online).
	Peers []PeerConfig `yaml:"peers"`
	// Voters are the ids of the peers that vote when the group is created
	// (empty: every peer). The others start as learners; `mu member add`
	// promotes one and `mu member remove` demotes a voter, while the group
	// runs (docs/membership.md). Every node lists the same voters.
	Voters []rdma.NodeID `yaml:"voters"`
	// AllowEvenMembers accepts an even member count. An even group
	// tolerates no more failures than the odd group one smaller, and a
	// split in half leaves neither side a majority, so it is refused unless
	// asked for.
	AllowEvenMembers bool           `yaml:"allow_even_members"`
	RDMA             RDMAConfig     `yaml:"rdma"`
	Timings          TimingsConfig  `yaml:"timings"`
	Detector         DetectorConfig `yaml:"detector"`
	Hwmon            HwmonConfig    `yaml:"hwmon"`
	Client           ClientConfig   `yaml:"client"`
	Security         SecurityConfig `yaml:"security"`
	// PollMode is how the replica's driver waits: PollSpin owns a core,
	// PollSpinYield yields between polls when cores are scarce, and
	// PollIdleSleep sleeps until the next wake-up the replica asks for
	// unless proposals are in flight (for hosts where several replicas
	// share too few cores for any of them to spin, such as an emulated VM).
	PollMode string `yaml:"poll_mode"`
	// LogSizeBytes is the replicated log's size in the registered region.
	LogSizeBytes uint64 `yaml:"log_size_bytes"`
	// AppliedLogMaxBytes bounds the in-memory record of applied commands
	// that the client endpoint serves (`mu demo`, tests and operators read
	// it); the oldest entries are dropped beyond it. The replicated state
	// itself is not affected.
	AppliedLogMaxBytes uint64 `yaml:"applied_log_max_bytes"`
	// MetricsAddress is host:port where GET /metrics serves this node's
	// Prometheus metrics (docs/metrics.md); empty serves none. The metrics
	// carry no secret and no command, so the listener is plain HTTP.
	MetricsAddress string `yaml:"metrics_address"`
	// Durability is how the log is persisted: memory (the default: only in
	// registered memory), async or sync (docs/durability.md).
	Durability string `yaml:"durability"`
	// DataDir is the directory of the node's write-ahead log, required
	// with durability async or sync; relative to the file's directory.
	DataDir string `yaml:"data_dir"`
	// InitialClusterState is new for the members of a cluster being
	// created, and existing (the default) otherwise. With durability async
	// or sync, a node whose data_dir holds no log starts as a voter only
	// when it is new; otherwise it rejoins and is caught up by the leader,
	// however long its peers take to answer, so a node that lost its disk
	// never votes with an empty log.
	InitialClusterState string `yaml:"initial_cluster_state"`

	// dir is the directory of the file Load read: relative credential
	// paths are taken from there.
	dir string
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

// ClientConfig bounds what clients may cost the node's client endpoint.
type ClientConfig struct {
	// MaxConnections is how many client connections are served at once;
	// more are answered "busy" and closed.
	MaxConnections int `yaml:"max_connections"`
	// IdleTimeout closes a connection that sends no request for this long.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// ReadTimeout bounds receiving one request once its first byte came,
	// so a client trickling a frame cannot hold a connection.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds sending one answer to a client that stopped
	// reading.
	WriteTimeout Duration `yaml:"write_timeout"`
}

// SecurityConfig is the node's credentials: mutual TLS 1.3 on the
// bootstrap and client listeners, or Insecure to run without.
type SecurityConfig struct {
	// Insecure runs both listeners in plain TCP, without authentication.
	// The node says so loudly at every start.
	Insecure bool `yaml:"insecure"`
	// CA is the cluster CA certificate (PEM) that every node and client
	// certificate must chain to; Cert and Key are this node's (`mu certs`
	// makes them). Relative paths are from the config file's directory.
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Poll modes.
const (
	PollSpin      = "spin"
	PollSpinYield = "spin-yield"
	PollIdleSleep = "idle-sleep"
)

// Bounds.
const (
	// Mu replicates across 3 to 7 nodes.
	MinClusterNodes = 3
	MaxClusterNodes = 7
	cacheLineBytes  = 64
	minLogSizeBytes = 64 << 10
	maxLogSizeBytes = 1 << 40
	// MaxDuration is the longest any duration in the file may be: far
	// beyond every sensible setting, and small enough that the node's
	// arithmetic on durations (multiples, sums with now) cannot overflow
	// int64 nanoseconds.
	MaxDuration        = 1000 * time.Hour
	maxClientConns     = 1 << 16
	minAppliedLogBytes = 4 << 10
	maxAppliedLogBytes = 1 << 40
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
			HandshakeTimeout:      Duration(bootstrap.DefaultHandshakeTimeout),
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
		Client: ClientConfig{
			MaxConnections: 256,
			IdleTimeout:    Duration(5 * time.Minute),
			ReadTimeout:    Duration(10 * time.Second),
			WriteTimeout:   Duration(10 * time.Second),
		},
		PollMode:            PollSpin,
		LogSizeBytes:        64 << 20,
		AppliedLogMaxBytes:  64 << 20,
		Durability:          consensus.DurabilityMemory.String(),
		InitialClusterState: ClusterStateExisting,
	}
}

// Values of initial_cluster_state.
const (
	ClusterStateNew      = "new"
	ClusterStateExisting = "existing"
)

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
		if durationSyntax(n.Value) {
			return fmt.Errorf("%q overflows a duration (at most %v)", n.Value, MaxDuration)
		}
		return fmt.Errorf("%q is not a duration like \"40us\" or \"2ms\"", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// durationSyntax reports whether s is spelled like a duration, so that a
// ParseDuration failure on it can only be an overflow.
func durationSyntax(s string) bool {
	s = strings.TrimLeft(s, "+-")
	if s == "" {
		return false
	}
	units := []string{"ns", "us", "µs", "μs", "ms", "s", "m", "h"}
	for s != "" {
		i := 0
		digits := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			if s[i] != '.' {
				digits++
			}
			i++
		}
		if digits == 0 {
			return false
		}
		s = s[i:]
		j := 0
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		if !slices.Contains(units, s[:j]) {
			return false
		}
		s = s[j:]
	}
	return true
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Load reads, decodes and validates a config file.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c, err := Decode(data)
	if err == nil {
		c.dir = filepath.Dir(path)
		err = c.Validate()
	}
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a config over DefaultConfig and validates it. Unknown
// keys, duplicate keys and values of the wrong type are errors naming the
// field by its path, e.g. "peers[2].address".
func Parse(data []byte) (Config, error) {
	c, err := Decode(data)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Decode decodes a config over DefaultConfig without validating it.
func Decode(data []byte) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if doc.Kind == 0 {
		return Config{}, fmt.Errorf("%w: file is empty", ErrConfig)
	}
	// Walk first: yaml's own errors give a line but not the field's path.
	if err := checkShape(&doc, reflect.TypeFor[Config](), "", 0); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return c, nil
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// maxAliasDepth bounds alias chains and nesting: a config is shallow, and
// a crafted document must not recurse without end.
const maxAliasDepth = 64

// checkShape checks node against type t: every key names a field, no key
// repeats, and every scalar decodes into its field's type.
func checkShape(n *yaml.Node, t reflect.Type, path string, depth int) error {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if depth++; depth > maxAliasDepth {
			return fmt.Errorf("%s: nested or aliased too deeply", path)
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	if depth++; depth > maxAliasDepth {
		return fmt.Errorf("%s: nested or aliased too deeply", path)
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
		return checkShape(n, t.Elem(), path, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%s: expected a list, got a %s", where(), kindName(n.Kind))
		}
		for i, item := range n.Content {
			if err := checkShape(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth); err != nil {
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
		if err := checkShape(v, f.Type, sub, depth); err != nil {
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

// Self returns this node's entry in Peers.
func (c *Config) Self() PeerConfig {
	i := slices.IndexFunc(c.Peers, func(p PeerConfig) bool { return p.ID == c.ID })
	if i < 0 {
		panic("mu: config: Self on a config that did not validate")
	}
	return c.Peers[i]
}

// Peer returns member id's entry.
func (c *Config) Peer(id rdma.NodeID) (PeerConfig, bool) {
	i := slices.IndexFunc(c.Peers, func(p PeerConfig) bool { return p.ID == id })
	if i < 0 {
		return PeerConfig{}, false
	}
	return c.Peers[i], true
}
