package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/hwmon"
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
security:
  insecure: true
poll_mode: spin
`

// exampleDir copies the example config into a temporary directory and
// makes the credentials it names there.
func exampleDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("../cmd/mu/testdata/node1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node1.yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(dir, "certs")
	if err := clustertls.InitDir(certs, "test", time.Hour); err != nil {
		t.Fatal(err)
	}
	for id := rdma.NodeID(1); id <= 3; id++ {
		if _, _, err := clustertls.IssueInDir(certs, clustertls.NodeIdentity(id), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestExampleConfigLoads(t *testing.T) {
	dir := exampleDir(t)
	c, err := Load(filepath.Join(dir, "node1.yaml"))
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
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "security.cert: expires") {
		t.Errorf("warnings for the example with hour-long certificates: %v", w)
	}
	cr, err := c.Credentials()
	if err != nil || cr.Self != clustertls.NodeIdentity(1) {
		t.Errorf("credentials: %v %v", cr, err)
	}
	// From another working directory, the paths still resolve against
	// the file's directory.
	if _, err := Load(filepath.Join(dir, "node1.yaml")); err != nil {
		t.Error(err)
	}
}

// The credentials must be this node's and the cluster's.
func TestConfigCredentialChecks(t *testing.T) {
	dir := exampleDir(t)
	path := filepath.Join(dir, "node1.yaml")
	b, _ := os.ReadFile(path)
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(string(b), "certs/node1.pem", "certs/node2.pem", 1))
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "security.cert: ") {
		t.Errorf("certificate of node 2 with node 2's key under node 1: %v", err)
	}
	write(strings.NewReplacer("certs/node1.pem", "certs/node2.pem", "certs/node1-key.pem", "certs/node2-key.pem").Replace(string(b)))
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "security.cert: the certificate is node 2's, this is node 1") {
		t.Errorf("node 2's credentials for node 1: %v", err)
	}
	other := filepath.Join(dir, "other")
	if err := clustertls.InitDir(other, "x", time.Hour); err != nil {
		t.Fatal(err)
	}
	write(strings.Replace(string(b), "certs/ca.pem", "other/ca.pem", 1))
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "security.cert: clustertls: certificate does not verify") {
		t.Errorf("another cluster's CA: %v", err)
	}
	write(strings.Replace(string(b), "  key: certs/node1-key.pem", "  key: certs/missing.pem", 1))
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "security.key: open") {
		t.Errorf("missing key: %v", err)
	}
}

func TestConfigDefaultsFillOmittedFields(t *testing.T) {
	c, err := Parse([]byte(baseConfig))
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
	d.ClusterID = 7
	d.Peers = []PeerConfig{{ID: 1, Address: "127.0.0.1:1", ClientAddress: "127.0.0.1:2"}, {ID: 2, Address: "127.0.0.2:1", ClientAddress: "127.0.0.2:2"}, {ID: 3, Address: "127.0.0.3:1", ClientAddress: "127.0.0.3:2"}}
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "rdma: give interface") {
		t.Errorf("DefaultConfig without an RDMA port: %v, want an rdma error", err)
	}
	d.RDMA.Interface = "eth0"
	d.Security.Insecure = true
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultConfig with peers: %v", err)
	}
}

func TestConfigExplicitDevice(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(baseConfig, "interface: eth0", "device: rxe0\n  gid_index: 0\n  port: 1", 1)))
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
		{"unknown top-level key", "poll_mode: spin", "poll_mode: spin\nlog_size: 5", "log_size (line 20): unknown field"},
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
		{"duplicate key", "poll_mode: spin", "poll_mode: spin\npoll_mode: spin-yield", "poll_mode (line 20): given twice (first at line 19)"},
		{"peers not a list", base3, "peers: 3\n", "peers (line 3): expected a list"},
		{"timings not a mapping", "timings:\n  pullscore_read_interval: 40us", "timings: fast", "timings (line 15): expected a mapping"},
		{"bad poll mode", "poll_mode: spin", "poll_mode: busy", "poll_mode: \"busy\" is not"},
		{"bad metrics address", "poll_mode: spin", "poll_mode: spin\nmetrics_address: 9464", "metrics_address: \"9464\" is not host:port"},
		{"duplicate id", "  - id: 3", "  - id: 1", "peers[2].id: 1 is also peers[0].id"},
		{"self not a peer", "id: 2\n", "id: 9\n", "id: 9 is not among peers"},
		{"two nodes", base3, peers(2), "peers: 2 nodes"},
		{"eight nodes", base3, peers(8), "peers: 8 nodes"},
		{"shared address", "client_address: 127.0.0.1:7203", "client_address: 127.0.0.1:7101", "peers[2].client_address: 127.0.0.1:7101 is also peers[0].address"},
		{"no rdma port", "  interface: eth0", "  interface: \"\"", "rdma: give interface"},
		{"interface and device", "  interface: eth0", "  interface: eth0\n  device: rxe0", "rdma.device: give interface or device"},
		{"device without gid", "  interface: eth0", "  device: rxe0", "rdma.gid_index: required"},
		{"gid with interface", "  interface: eth0", "  interface: eth0\n  gid_index: 1", "rdma.gid_index: only with rdma.device"},
		{"negative gid", "  interface: eth0", "  device: rxe0\n  gid_index: -1", "rdma.gid_index: -1 is outside 0..255"},
		{"gid beyond 8 bits", "  interface: eth0", "  device: rxe0\n  gid_index: 300", "rdma.gid_index: 300 is outside 0..255"},
		{"port beyond 8 bits", "  interface: eth0", "  interface: eth0\n  port: 256", "rdma.port: 256 is outside 0..255"},

		// Numbers that compare false with everything.
		{"NaN ratio", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  probe_p99_warn_ratio: .nan", "hwmon.probe_p99_warn_ratio: NaN is not a finite number"},
		{"NaN critical ratio", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  probe_p99_critical_ratio: .NaN", "hwmon.probe_p99_critical_ratio: NaN is not a finite number"},
		{"+Inf ratio", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  disk_p99_critical_ratio: .inf", "hwmon.disk_p99_critical_ratio: +Inf is not a finite number"},
		{"-Inf rate", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  memory_ce_warn_per_day: -.inf", "hwmon.memory_ce_warn_per_day: -Inf is not a finite number"},
		{"Inf symbol rate", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  link_symbol_errors_critical_per_hour: .Inf", "hwmon.link_symbol_errors_critical_per_hour: +Inf is not a finite number"},

		// Identity.
		{"missing cluster id", "cluster_id: 42\n", "", "cluster_id: missing or 0"},
		{"zero cluster id", "cluster_id: 42", "cluster_id: 0", "cluster_id: missing or 0"},
		{"missing node id", "id: 2\n", "", "id: missing or 0"},
		{"zero peer id", "  - id: 3", "  - id: 0", "peers[2].id: missing or 0"},

		// What the node's components would refuse at start-up.
		{"score_max beyond pullscore", "poll_mode: spin", "poll_mode: spin\ndetector:\n  score_max: 9223372036854775807", "detector.score_max: 9223372036854775807 is outside 1..255"},
		{"score_max 256", "poll_mode: spin", "poll_mode: spin\ndetector:\n  score_max: 256", "detector.score_max: 256 is outside 1..255"},
		{"log too small for 16 slots", "poll_mode: spin", "poll_mode: spin\nlog_size_bytes: 65536", "log_size_bytes: refused by consensus"},
		{"collect interval below hwmon floor", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  collect_interval: 5ms", "hwmon.collect_interval: 5ms is shorter than 10ms"},

		// Durations.
		{"duration overflows int64 ns", "40us", "9999999999h", "timings.pullscore_read_interval (line 16): \"9999999999h\" overflows a duration"},
		{"duration overflows in a sum", "40us", "40us\n  handshake_timeout: 2562047h47m16s1s", "timings.handshake_timeout (line 17): \"2562047h47m16s1s\" overflows"},
		{"duration beyond the cap", "40us", "40us\n  probe_interval: 1001h", "timings.probe_interval: 1001h0m0s is longer than 1000h0m0s"},
		{"hwmon duration beyond the cap", "poll_mode: spin", "poll_mode: spin\nhwmon:\n  probe_latency_critical: 2000h", "hwmon.probe_latency_critical: 2000h0m0s is longer than"},
		{"handshake longer than an hour", "40us", "40us\n  handshake_timeout: 2h", "timings.handshake_timeout: 2h0m0s is longer than 1h"},
		{"permission timeout zero", "40us", "40us\n  permission_timeout: 0s", "timings.permission_timeout: 0s is shorter than 1us"},

		// Group size.
		{"four nodes", base3, peers(4), "peers: 4 nodes tolerate no more failures than 3"},
		{"six nodes", base3, peers(6), "peers: 6 nodes tolerate no more failures than 5, and an even split leaves no majority; use an odd count, or set allow_even_members: true"},
		{"two voters", base3, peers(4) + "voters: [1, 2]\n", "voters: 2 voters; a group needs at least 3"},
		{"voter not a peer", base3, peers(4) + "voters: [1, 2, 9]\n", "voters[2]: 9 is not among peers[*].id"},
		{"voter twice", base3, peers(4) + "voters: [1, 2, 2]\n", "voters[2]: 2 is listed twice"},
		{"four voters", base3, peers(5) + "voters: [1, 2, 3, 4]\n", "voters: 4 voters tolerate no more failures than 3"},

		// Addresses after resolution.
		{"localhost and 127.0.0.1", "    address: 127.0.0.1:7103", "    address: localhost:7101", "peers[2].address: localhost:7101 is also peers[0].address (both reach 127.0.0.1:7101)"},
		{"localhost client and bootstrap", "client_address: 127.0.0.1:7203", "client_address: localhost:7102", "peers[2].client_address: localhost:7102 is also peers[1].address"},
		{"wildcard address", "    address: 127.0.0.1:7103", "    address: 0.0.0.0:7103", "peers[2].address: 0.0.0.0:7103 is the wildcard address"},
		{"unresolvable host", "    address: 127.0.0.1:7103", "    address: nowhere.invalid:7103", "peers[2].address: \"nowhere.invalid\" does not resolve"},

		// Client endpoint limits.
		{"no client connections", "poll_mode: spin", "poll_mode: spin\nclient:\n  max_connections: 0", "client.max_connections: 0 is outside"},
		{"idle timeout zero", "poll_mode: spin", "poll_mode: spin\nclient:\n  idle_timeout: 0s", "client.idle_timeout: 0s is shorter than 1ms"},
		{"read timeout zero", "poll_mode: spin", "poll_mode: spin\nclient:\n  read_timeout: 0s", "client.read_timeout"},
		{"applied log too small", "poll_mode: spin", "poll_mode: spin\napplied_log_max_bytes: 10", "applied_log_max_bytes: 10 is outside"},

		// Security.
		{"insecure with credentials", "  insecure: true", "  insecure: true\n  cert: a.pem", "security.insecure: true together with"},
		{"no credentials", "  insecure: true", "  insecure: false", "security.ca: required"},
		{"missing cert file", "  insecure: true", "  ca: /nonexistent/ca.pem\n  cert: c.pem\n  key: k.pem", "security.ca: open /nonexistent/ca.pem"},
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
	defer stubLookup(t)()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(baseConfig, c.old) {
				t.Fatalf("test case does not apply: %q not in the base config", c.old)
			}
			_, err := Parse([]byte(strings.Replace(baseConfig, c.old, c.new, 1)))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error does not wrap ErrConfig: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			// Validation errors (not decoding errors) carry the field.
			var fe *FieldError
			if errors.As(err, &fe) && !strings.HasPrefix(c.want, fe.Field) {
				t.Errorf("FieldError.Field = %q, want the start of %q", fe.Field, c.want)
			}
		})
	}
	if _, err := Parse(nil); !errors.Is(err, ErrConfig) {
		t.Errorf("empty file: %v", err)
	}
	if _, err := Load("testdata/does-not-exist.yaml"); !errors.Is(err, ErrConfig) {
		t.Errorf("missing file: %v", err)
	}
}

func TestConfigWarnings(t *testing.T) {
	four := strings.Replace(baseConfig, "rdma:", "  - id: 4\n    address: 127.0.0.1:7104\n    client_address: 127.0.0.1:7204\nrdma:", 1)
	if _, err := Parse([]byte(four)); err == nil || !strings.Contains(err.Error(), "allow_even_members") {
		t.Fatalf("four nodes without allow_even_members: %v", err)
	}
	c, err := Parse([]byte(four + "allow_even_members: true\n"))
	if err != nil {
		t.Fatalf("four nodes with allow_even_members must be legal: %v", err)
	}
	w := c.Warnings()
	if len(w) != 2 || !strings.Contains(w[0], "odd") || !strings.Contains(w[1], "INSECURE") {
		t.Errorf("warnings for four insecure nodes: %v", w)
	}
	c, err = Parse([]byte(four + "voters: [1, 2, 3]\n"))
	if err != nil {
		t.Fatalf("four peers, three voters must be legal: %v", err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "INSECURE") {
		t.Errorf("warnings for three voters and a learner: %v", w)
	}
	if cc := c.Consensus(); !slices.Equal(cc.Voters, []rdma.NodeID{1, 2, 3}) || len(cc.Members) != 4 {
		t.Errorf("consensus members %v voters %v", cc.Members, cc.Voters)
	}
	slow := strings.Replace(baseConfig, "40us", "2ms\n  probe_interval: 10ms", 1)
	c, err = Parse([]byte(slow))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 2 || !strings.Contains(w[0], "poll_mode") {
		t.Errorf("warnings for spinning at a 2ms cadence: %v", w)
	}
}

// stubLookup resolves names from a fixed table, so the tests do not depend
// on the machine's DNS: localhost is 127.0.0.1, *.invalid does not exist.
func stubLookup(t *testing.T) func() {
	t.Helper()
	old := lookupHost
	lookupHost = func(_ context.Context, host string) ([]string, error) {
		switch {
		case host == "localhost":
			return []string{"127.0.0.1"}, nil
		case host == "twohomed":
			return []string{"10.0.0.1", "10.0.0.2"}, nil
		case strings.HasSuffix(host, ".invalid"):
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return old(context.Background(), host)
	}
	return func() { lookupHost = old }
}

// A host with several addresses collides with any field that reaches one
// of them.
func TestConfigMultiHomedCollision(t *testing.T) {
	defer stubLookup(t)()
	text := strings.Replace(baseConfig, "    address: 127.0.0.1:7101", "    address: twohomed:7101", 1)
	text = strings.Replace(text, "    address: 127.0.0.1:7103", "    address: 10.0.0.2:7101", 1)
	_, err := Parse([]byte(text))
	if err == nil || !strings.Contains(err.Error(), "peers[2].address: 10.0.0.2:7101 is also peers[0].address") {
		t.Fatalf("got %v", err)
	}
}

// Every config Validate accepts is accepted by the components the node
// builds from it: check-config and start-up cannot disagree.
func TestValidatedConfigDerivesValidSettings(t *testing.T) {
	for _, extra := range []string{
		"",
		"log_size_bytes: 131072\n",
		"detector:\n  score_max: 255\n  fail_below: 1\n  recover_above: 254\n",
		"timings:\n  pullscore_read_interval: 1us\n  probe_interval: 1us\n  permission_timeout: 1us\n",
		"hwmon:\n  probe_p99_warn_ratio: 1.0001\n  probe_p99_critical_ratio: 1.0002\n  collect_interval: 10ms\n",
	} {
		text := baseConfig + extra
		if strings.HasPrefix(extra, "timings:") {
			text = strings.Replace(baseConfig, "timings:\n  pullscore_read_interval: 40us\n", extra, 1)
		}
		c, err := Parse([]byte(text))
		if err != nil {
			t.Errorf("%q: %v", extra, err)
			continue
		}
		cc := c.Consensus()
		if err := cc.Validate(); err != nil {
			t.Errorf("%q: consensus refuses: %v", extra, err)
		}
		hc := hwmon.DefaultConfig()
		c.ApplyHwmon(&hc)
		if err := hc.Validate(); err != nil {
			t.Errorf("%q: hwmon refuses: %v", extra, err)
		}
		if n := c.MaxRequestBytes(); n < 16 || n > cc.MaxPayloadBytes {
			t.Errorf("MaxRequestBytes = %d", n)
		}
	}
}

func TestDurationSyntax(t *testing.T) {
	for s, want := range map[string]bool{"1h": true, "1.5h2m": true, "-3us": true, "9999999999h": true, "µs": false, "1x": false, "": false, "h1": false, "1": false, "..s": false} {
		if got := durationSyntax(s); got != want {
			t.Errorf("durationSyntax(%q) = %v, want %v", s, got, want)
		}
	}
}
