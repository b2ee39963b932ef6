package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/examples/orderbook"
	"github.com/rdmaconsensus/mu/rdma"
)

// TestMain lets the test binary stand in for `embed serve`, so the binary
// built with `go test -c` is all a VM needs.
func TestMain(m *testing.M) {
	if os.Getenv("EMBED_RUN_AS_SERVE") == "1" {
		if err := serve(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "embed serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func requireRDMA(t *testing.T) {
	t.Helper()
	if devs, _ := filepath.Glob("/sys/class/infiniband/*"); len(devs) > 0 {
		return
	}
	if os.Getenv("MU_REQUIRE_RDMA") == "1" {
		t.Fatal("MU_REQUIRE_RDMA=1 but /sys/class/infiniband has no device")
	}
	t.Skip("no RDMA device; set MU_REQUIRE_RDMA=1 to make this a failure")
}

// Three `embed serve` processes over RDMA; a client streams orders to the
// leader and the leader is SIGKILLed mid-stream. The client resends an
// order whose outcome the crash left unknown: every order's fills reach
// it exactly once, identical to the book's fills for the same orders
// applied once each, in order, without replication.
func TestThreeProcessesLeaderKilledEveryOrdersFillsOnce(t *testing.T) {
	requireRDMA(t)
	const orders, killAt = 600, 200
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var boot, client []string
	addrs := map[rdma.NodeID]string{}
	for i := 1; i <= 3; i++ {
		for _, list := range []*[]string{&boot, &client} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			*list = append(*list, fmt.Sprintf("%d=%s", i, l.Addr()))
			l.Close()
		}
		addrs[rdma.NodeID(i)] = strings.SplitN(client[i-1], "=", 2)[1]
	}
	logDir := t.TempDir()
	procs := map[rdma.NodeID]*exec.Cmd{}
	for i := 1; i <= 3; i++ {
		cmd := exec.Command(exe, "-id", fmt.Sprint(i), "-peers", strings.Join(boot, ","), "-clients", strings.Join(client, ","),
			"-poll", "idle-sleep", "-read-interval", "20ms", "-election-timeout", "500ms")
		logf, err := os.Create(filepath.Join(logDir, fmt.Sprintf("node%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = append(os.Environ(), "EMBED_RUN_AS_SERVE=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[rdma.NodeID(i)] = cmd
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() }()
	}
	defer func() {
		if t.Failed() {
			for i := 1; i <= 3; i++ {
				b, _ := os.ReadFile(filepath.Join(logDir, fmt.Sprintf("node%d.log", i)))
				t.Logf("node %d:\n%s", i, b)
			}
		}
	}()

	// The same orders applied once each, in order, by the book alone (the
	// load generator resends some orders itself: they get the fills of
	// their first execution).
	gen := orderbook.NewLoadGen(3, orderbook.DefaultLoadGenConfig())
	b := newBook()
	cmds, want := make([][]byte, orders), make([][]byte, orders)
	for i := range cmds {
		cmds[i] = gen.Next(nil)
		want[i] = b.ApplyResult(consensus.Index(i+1), cmds[i], nil)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clients := map[rdma.NodeID]*endpoint.Client{}
	for id, a := range addrs {
		clients[id] = endpoint.NewClient(a, nil)
		defer clients[id].Close()
	}
	dead := rdma.NodeID(0)
	at := rdma.NodeID(1)
	resent := 0
	for i := 0; i < orders; {
		if ctx.Err() != nil {
			t.Fatalf("order %d not acknowledged within the time limit", i+1)
		}
		if at == dead && i > killAt {
			at = at%3 + 1
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		typ, body, err := clients[at].Call(cctx, endpoint.ReqPropose, cmds[i])
		ccancel()
		switch {
		case err == nil && typ == endpoint.RespOK:
			if !bytes.Equal(body, want[i]) {
				t.Fatalf("order %d: fills %x, want %x (applied twice, lost or out of order)", i+1, body, want[i])
			}
			i++
			if i == killAt {
				// Killed a moment later, with the next order likely in flight.
				dead = at
				p := procs[at]
				go func() { time.Sleep(200 * time.Microsecond); _ = p.Process.Kill() }()
				t.Logf("SIGKILL to the leader, node %d, after %d acknowledged orders", at, i)
			}
			continue
		case err == nil && typ == endpoint.RespNotLeader:
			if nl, derr := endpoint.DecodeNotLeader(body); derr == nil && nl.Known && nl.Leader != dead {
				at = nl.Leader
			} else {
				at = at%3 + 1
			}
		default:
			// Unknown outcome, a timeout or a dead node: the same order again,
			// wherever the leader is now.
			var re *endpoint.RemoteError
			if errors.As(err, &re) || err != nil {
				resent++
			}
			at = at%3 + 1
		}
		time.Sleep(5 * time.Millisecond)
	}
	if dead == 0 {
		t.Fatal("the leader was never killed")
	}
	t.Logf("%d orders acknowledged, each with its fills exactly once; %d calls retried", orders, resent)
}
