package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the mu command: the process
// tests start it as `mu node` with MU_TEST_RUN_AS_MU=1, so the binary built
// with `go test -c ./cmd/mu` is all the VM needs.
func TestMain(m *testing.M) {
	if os.Getenv("MU_TEST_RUN_AS_MU") == "1" {
		root := newRootCmd()
		root.SetArgs(os.Args[1:])
		if err := root.Execute(); err != nil {
			os.Stderr.WriteString("mu: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// requireRDMA skips without an RDMA device, and fails instead when
// MU_REQUIRE_RDMA=1 says one must be there.
func requireRDMA(t *testing.T) {
	t.Helper()
	devs, _ := filepath.Glob("/sys/class/infiniband/*")
	if len(devs) > 0 {
		return
	}
	if os.Getenv("MU_REQUIRE_RDMA") == "1" {
		t.Fatal("MU_REQUIRE_RDMA=1 but /sys/class/infiniband has no device")
	}
	t.Skip("no RDMA device (/sys/class/infiniband is empty); set MU_REQUIRE_RDMA=1 to make this a failure")
}

// envDuration reads a duration from the environment, for runs on slow
// (emulated) machines.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// Three `mu node` processes on the RDMA device; the leader is SIGKILLed
// twice (and restarted without its log) and SIGSTOPped once (and
// continued): no acknowledged order may be lost, and the replicas' applied
// logs must be identical.
func TestProcessesSurviveLeaderKillsAndFreeze(t *testing.T) {
	requireRDMA(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), envDuration(t, "MU_TEST_TIMEOUT", 15*time.Minute))
	defer cancel()
	opts := procGroupOptions{
		n: 3, bin: exe, env: []string{"MU_TEST_RUN_AS_MU=1"}, logDir: logDir,
		drive:             envOr("MU_TEST_DRIVE", PollIdleSleep),
		readInterval:      envDuration(t, "MU_TEST_READ_INTERVAL", 20*time.Millisecond),
		permissionTimeout: envDuration(t, "MU_TEST_PERMISSION_TIMEOUT", 500*time.Millisecond),
	}
	g, err := startProcGroup(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	defer func() {
		if t.Failed() {
			for _, f := range []string{"node1.log", "node2.log", "node3.log"} {
				b, _ := os.ReadFile(filepath.Join(logDir, f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	}()
	run, err := runChaos(ctx, g, []faultKind{faultKill, faultKill, faultFreeze}, chaosOptions{
		seed: 11, ordersBefore: 100, ordersBetween: 100,
		failoverWait: envDuration(t, "MU_TEST_FAILOVER_WAIT", time.Minute),
		recoverWait:  envDuration(t, "MU_TEST_RECOVER_WAIT", 3*time.Minute),
		onFault: func(i int, r faultResult) {
			t.Logf("fault %d: %s node %d -> node %d leads; failover %s (%s); back in %v",
				i+1, r.Kind, r.Old, r.New, us(r.FailoverNs), r.Steps, time.Duration(r.RecoverNs).Round(time.Millisecond))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Faults) != 3 {
		t.Fatalf("%d faults happened, want 3", len(run.Faults))
	}
	for _, f := range run.Faults {
		if f.New == f.Old {
			t.Errorf("%s of node %d: the same node acknowledged first afterwards", f.Kind, f.Old)
		}
	}
	l := run.Logs[g.ids[0]]
	n, _ := digest(l.Entries, l.RestoredAt)
	t.Logf("%d acknowledged orders; every replica applied them, identical logs (%d commands up to index %d)", len(run.Acks), n, l.LastIndex)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
