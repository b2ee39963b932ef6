package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the root command with args and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// exampleConfig copies the example config into a directory with the
// credentials it names (made by `mu certs`) and returns its path.
func exampleConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	certsIn(t, filepath.Join(dir, "certs"), 3)
	data, err := os.ReadFile("testdata/node1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node1.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckConfigAcceptsExample(t *testing.T) {
	out, err := run(t, "check-config", exampleConfig(t))
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	if !strings.Contains(out, "node 1 of 3") {
		t.Errorf("output %q does not name the node", out)
	}
}

func TestCheckConfigNamesBadField(t *testing.T) {
	example := exampleConfig(t)
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "probe_interval: 10ms", "probe_interval: 10", 1)
	path := filepath.Join(filepath.Dir(example), "bad.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, "check-config", path)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "timings.probe_interval") {
		t.Fatalf("error %v does not name timings.probe_interval", err)
	}
}

// health must work on any machine: every signal is listed, available or
// with the reason it is not.
func TestHealthListsEverySignal(t *testing.T) {
	out, err := run(t, "health", "--span", "50ms")
	var ee exitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("health: %v\n%s", err, out)
	}
	for _, want := range []string{"verdict:", "signals (", "edac", "smart", "rdma", "netdev"} {
		if !strings.Contains(out, want) {
			t.Errorf("health output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "signal unavailable:") && !strings.Contains(out, "unavailable)") {
		t.Errorf("unavailable signals not counted:\n%s", out)
	}
}

// check-config and node start-up run one validation: a value the node's
// components would refuse is refused by both, with the same message.
func TestCheckConfigAndNodeAgree(t *testing.T) {
	example := exampleConfig(t)
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ old, new, field string }{
		{"score_max: 15", "score_max: 9223372036854775807", "detector.score_max"},
		{"cluster_id: 0x6d75", "cluster_id: 0", "cluster_id"},
		{"probe_p99_warn_ratio: 5", "probe_p99_warn_ratio: .nan", "hwmon.probe_p99_warn_ratio"},
		{"address: 127.0.0.1:7103", "address: localhost:7101", "peers[2].address"},
		{"log_size_bytes: 67108864", "log_size_bytes: 65536", "log_size_bytes"},
		{"cert: certs/node1.pem", "cert: certs/node2.pem", "security.cert"},
		{"  key: certs/node1-key.pem", "  key: certs/nowhere.pem", "security.key"},
	} {
		bad := strings.Replace(string(data), c.old, c.new, 1)
		if bad == string(data) {
			t.Fatalf("%q not in the example", c.old)
		}
		path := filepath.Join(filepath.Dir(example), "bad.yaml")
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		_, checkErr := run(t, "check-config", path)
		_, nodeErr := run(t, "node", "--config", path)
		if checkErr == nil || nodeErr == nil {
			t.Fatalf("%s: check-config %v, node %v: both must refuse", c.field, checkErr, nodeErr)
		}
		if checkErr.Error() != nodeErr.Error() || !strings.Contains(checkErr.Error(), c.field+":") {
			t.Errorf("%s:\ncheck-config: %v\nnode:         %v", c.field, checkErr, nodeErr)
		}
	}
}

// A node without credentials refuses to start unless security.insecure
// is set, and then says so loudly.
func TestNodeRefusesToStartWithoutCredentials(t *testing.T) {
	data, err := os.ReadFile(exampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(data), "security:")
	j := strings.Index(string(data), "poll_mode:")
	none := string(data[:i]) + string(data[j:])
	path := filepath.Join(t.TempDir(), "none.yaml")
	if err := os.WriteFile(path, []byte(none), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "node", "--config", path); err == nil || !strings.Contains(err.Error(), "security.ca: required") {
		t.Fatalf("node without credentials: %v", err)
	}
	insecure := string(data[:i]) + "security:\n  insecure: true\n" + string(data[j:])
	if err := os.WriteFile(path, []byte(insecure), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "check-config", path)
	if err != nil || !strings.Contains(out, "INSECURE") {
		t.Fatalf("check-config with insecure: %v\n%s", err, out)
	}
	// The node prints the warning, then fails later for want of an RDMA
	// device here (or runs, on a machine with one: cancel it at once).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	root := newRootCmd()
	var buf bytes.Buffer
	root.SetOut(&buf)
	root.SetErr(&buf)
	root.SetArgs([]string{"node", "--config", path})
	_ = root.ExecuteContext(ctx)
	if n := strings.Count(buf.String(), "INSECURE"); n < 2 {
		t.Errorf("insecure start said so %d times:\n%s", n, buf.String())
	}
}

// certsIn makes a CA and node certificates 1..n in dir with `mu certs`.
func certsIn(t *testing.T, dir string, n int, clients ...string) {
	t.Helper()
	if out, err := run(t, "certs", "init", "--dir", dir, "--name", "test"); err != nil {
		t.Fatalf("certs init: %v\n%s", err, out)
	}
	if _, err := run(t, "certs", "init", "--dir", dir); err == nil {
		t.Fatal("certs init replaced an existing CA")
	}
	for i := 1; i <= n; i++ {
		if out, err := run(t, "certs", "issue", "--dir", dir, "--node", fmt.Sprint(i)); err != nil {
			t.Fatalf("certs issue: %v\n%s", err, out)
		}
	}
	for _, c := range clients {
		if out, err := run(t, "certs", "issue", "--dir", dir, "--client", c); err != nil {
			t.Fatalf("certs issue: %v\n%s", err, out)
		}
	}
}
