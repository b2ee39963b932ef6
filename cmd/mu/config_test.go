package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

const baseConfig = `id: 2
cluster_id: 42
peers:
  - id: 1
    address: 127.0.0.1:7101
    client_address: 127.0.0.1:7201
  - id: 2
    address: 127.0.0.1:7102
    client_address: 127.0.0.1:7202
  - id: 3
    address: 127.0.0.1:7103
    client_address: 127.0.0.1:7203
rdma:
  interface: eth0
timings:
  pullscore_read_interval: 40us
poll_mode: spin
`

func TestExampleConfigLoads(t *testing.T) {
	c, err := LoadConfig("testdata/node1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != 1 || c.ClusterID != 0x6d75 || len(c.Peers) != 3 {
		t.Errorf("identity: id %d cluster %#x peers %d", c.ID, c.ClusterID, len(c.Peers))
	}
	if got := c.Self(); got.Address != "127.0.0.1:7101" || got.ClientAddress != "127.0.0.1:7201" {
		t.Errorf("Self() = %+v", got)
	}
	if c.Timings.PullscoreReadInterval.D() != 40*time.Microsecond || c.Timings.PermissionTimeout.D() != 2*time.Millisecond {
		t.Errorf("timings = %+v", c.Timings)
	}
	if c.PollMode != PollSpinYield || c.LogSizeBytes != 64<<20 {
		t.Errorf("poll_mode %q log_size_bytes %d", c.PollMode, c.LogSizeBytes)
	}
	if s := c.RDMA.Spec(); s.Interface != "eth0" || s.GIDIndex != rdma.AutoGIDIndex || s.Device != "" {
		t.Errorf("RDMA spec = %+v", s)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings for the example: %v", w)
	}
}

func TestConfigDefaultsFillOmittedFields(t *testing.T) {
	c, err := ParseConfig([]byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.Timings.ProbeInterval != d.Timings.ProbeInterval || c.Hwmon != d.Hwmon || c.Detector != d.Detector || c.LogSizeBytes != d.LogSizeBytes {
		t.Errorf("omitted fields did not keep their defaults: %+v", c)
	}
	if c.Timings.PullscoreReadInterval.D() != 40*time.Microsecond {
		t.Errorf("pullscore_read_interval = %v", c.Timings.PullscoreReadInterval)
	}
	// The defaults alone, with an identity, are valid.
	d.ID = 1
	d.Peers = []PeerConfig{{1, "h1:1", "h1:2"}, {2, "h2:1", "h2:2"}, {3, "h3:1", "h3:2"}}
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "rdma: give interface") {
		t.Errorf("DefaultConfig without an RDMA port: %v, want an rdma error", err)
	}
	d.RDMA.Interface = "eth0"
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultConfig with peers: %v", err)
	}
}

func TestConfigExplicitDevice(t *testing.T) {
	c, err := ParseConfig([]byte(strings.Replace(baseConfig, "interface: eth0", "device: rxe0\n  gid_index: 0\n  port: 1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.RDMA.Spec(); s.Device != "rxe0" || s.GIDIndex != 0 || s.Port != 1 || s.Interface != "" {
		t.Errorf("RDMA spec = %+v", s)
	}
}

func TestConfigRejects(t *testing.T) {
	peers := func(n int) string {
		var b strings.Builder
		b.WriteString("peers:\n")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "  - id: %d\n    address: 127.0.0.1:%d\n    client_address: 127.0.0.1:%d\n", i, 7100+i, 7200+i)
		}
		return b.String()
	}
	base3 := peers(3)
	cases := []struct {
		name, old, new string
		want           string // the field path (and words) the error must name
	}{
		{"unknown top-level key", "poll_mode: spin", "poll_mode: spin\nlog_size: 5", "log_size (line 18): unknown field"},
		{"unknown peer key", "    address: 127.0.0.1:7103", "    adress: 127.0.0.1:7103", "peers[2].adress (line 11): unknown field"},
		{"bad peer address", "    address: 127.0.0.1:7103", "    address: nowhere", "peers[2].address: \"nowhere\" is not host:port"},
		{"port out of range", "127.0.0.1:7203", "127.0.0.1:72030", "peers[2].client_address"},
		{"missing address", "    client_address: 127.0.0.1:7203\n", "", "peers[2].client_address: required"},
		{"id too large", "id: 2\n", "id: 70000\n", "id (line 1): \"70000\" is not a valid unsigned integer (16 bits)"},
		{"id not a number", "id: 2\n", "id: two\n", "id (line 1): \"two\" is not a valid unsigned integer"},
		{"negative cluster", "cluster_id: 42", "cluster_id: -1", "cluster_id (line 2)"},
		{"bare number duration", "40us", "40", "timings.pullscore_read_interval (line 16): \"40\" is not a duration string"},
		{"bad duration", "40us", "40 parsecs", "timings.pullscore_read_interval (line 16): \"40 parsecs\" is not a duration"},
		{"negative duration", "40us", "-40us", "timings.pullscore_read_interval (line 16): \"-40us\" is negative"},
		{"duplicate key", "poll_mode: spin", "poll_mode: spin\npoll_mode: spin-yield", "poll_mode (line 18): given twice (first at line 17)"},
		{"peers not a list", base3, "peers: 3\n", "peers (line 3): expected a list"},
		{"timings not a mapping", "timings:\n  pullscore_read_interval: 40us", "timings: fast", "timings (line 15): expected a mapping"},
		{"bad poll mode", "poll_mode: spin", "poll_mode: busy", "poll_mode: \"busy\" is not"},
		{"duplicate id", "  - id: 3", "  - id: 1", "peers[2].id: 1 is also peers[0].id"},
		{"self not a peer", "id: 2\n", "id: 9\n", "id: 9 is not among peers"},
		{"two nodes", base3, peers(2), "peers: 2 nodes"},
		{"eight nodes", base3, peers(8), "peers: 8 nodes"},
		{"shared address", "client_address: 127.0.0.1:7203", "client_address: 127.0.0.1:7101", "peers[2].client_address: 127.0.0.1:7101 is also peers[0].address"},
		{"no rdma port", "  interface: eth0", "  interface: \"\"", "rdma: give interface"},
		{"interface and device", "  interface: eth0", "  interface: eth0\n  device: rxe0", "rdma.device: give interface or device"},
		{"device without gid", "  interface: eth0", "  device: rxe0", "rdma.gid_index: required"},
		{"gid with interface", "  interface: eth0", "  interface: eth0\n  gid_index: 1", "rdma.gid_index: only with rdma.device"},
		{"negative gid", "  interface: eth0", "  device: rxe0\n  gid_index: -1", "rdma.gid_index: -1 is negative"},
		{"read interval too short", "40us", "100ns", "timings.pullscore_read_interval: 100ns is outside"},
		{"probe faster than reads", "40us", "40us\n  probe_interval: 10us", "timings.probe_interval: 10µs is shorter"},
		{"zero handshake timeout", "40us", "40us\n  handshake_timeout: 0s", "timings.handshake_timeout"},
		{"hysteresis inverted", "poll_mode: spin", "poll_mode: spin\ndetector:\n  fail_below: 6\n  recover_above: 2", "detector.recover_above"},
		{"warn above critical", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  memory_ce_warn_per_day: 200", "hwmon.memory_ce_critical_per_day: must exceed hwmon.memory_ce_warn_per_day"},
		{"latency warn above critical", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  probe_latency_warn: 60ms", "hwmon.probe_latency_critical"},
		{"ratio not above 1", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  disk_p99_warn_ratio: 0.5", "hwmon.disk_p99_warn_ratio"},
		{"log not cache-line sized", "poll_mode: spin", "poll_mode: spin\nlog_size_bytes: 1000004", "log_size_bytes: 1000004 must be a multiple of 64"},
		{"log too small", "poll_mode: spin", "poll_mode: spin\nlog_size_bytes: 64", "log_size_bytes"},
		{"syntax error", "poll_mode: spin", "poll_mode: [spin", "yaml:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(baseConfig, c.old) {
				t.Fatalf("test case does not apply: %q not in the base config", c.old)
			}
			_, err := ParseConfig([]byte(strings.Replace(baseConfig, c.old, c.new, 1)))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error does not wrap ErrConfig: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
	if _, err := ParseConfig(nil); !errors.Is(err, ErrConfig) {
		t.Errorf("empty file: %v", err)
	}
	if _, err := LoadConfig("testdata/does-not-exist.yaml"); !errors.Is(err, ErrConfig) {
		t.Errorf("missing file: %v", err)
	}
}

func TestConfigWarnings(t *testing.T) {
	four := strings.Replace(baseConfig, "rdma:", "  - id: 4\n    address: 127.0.0.1:7104\n    client_address: 127.0.0.1:7204\nrdma:", 1)
	c, err := ParseConfig([]byte(four))
	if err != nil {
		t.Fatalf("four nodes must be legal: %v", err)
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "odd") {
		t.Errorf("warnings for four nodes: %v", w)
	}
	slow := strings.Replace(baseConfig, "40us", "2ms\n  probe_interval: 10ms", 1)
	c, err = ParseConfig([]byte(slow))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "poll_mode") {
		t.Errorf("warnings for spinning at a 2ms cadence: %v", w)
	}
}
