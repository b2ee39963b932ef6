package main

import (
	"bytes"
	"errors"
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

func TestCheckConfigAcceptsExample(t *testing.T) {
	out, err := run(t, "check-config", "testdata/node1.yaml")
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	if !strings.Contains(out, "node 1 of 3") {
		t.Errorf("output %q does not name the node", out)
	}
}

func TestCheckConfigNamesBadField(t *testing.T) {
	data, err := os.ReadFile("testdata/node1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "probe_interval: 10ms", "probe_interval: 10", 1)
	path := filepath.Join(t.TempDir(), "bad.yaml")
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
