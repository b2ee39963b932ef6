package jepsen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The guest agent: one per VM, reached from the host over a forwarded port
// of the VM's user-mode NIC, so that faults on the RoCE NIC never cut the
// control channel. It runs shell commands (iptables-legacy, tc, ip), starts
// and signals the VM's `mu node`, and relays the client endpoint (which
// listens on the RoCE network, where the host is not) to the forwarded
// client port.

// AgentOptions configures RunAgent.
type AgentOptions struct {
	ID      int
	Listen  string // control address, on the user-mode NIC
	Proxy   string // LISTEN=TARGET: the client endpoint relay
	Modules string // directory with an "order" file of .ko to insmod
	Dir     string // this VM's run directory: node.yaml, node.log
	MuBin   string // the mu binary
}

// request is one control call: a JSON object on one line.
type request struct {
	Op  string `json:"op"`            // sh, start, signal, pid
	Cmd string `json:"cmd,omitempty"` // sh: a bash command line
	Sig string `json:"sig,omitempty"` // signal: KILL, STOP, CONT, TERM
}

// response answers a request on one line.
type response struct {
	OK  bool   `json:"ok"`
	Out string `json:"out,omitempty"`
	Err string `json:"err,omitempty"`
	Pid int    `json:"pid,omitempty"`
}

type agent struct {
	o    AgentOptions
	mu   sync.Mutex
	node *exec.Cmd
	done chan struct{}
	logf *os.File
}

// RunAgent loads the fault injector's kernel modules, starts the relay and
// serves control calls until ctx ends.
func RunAgent(ctx context.Context, o AgentOptions) error {
	if o.Modules != "" {
		if err := loadModules(o.Modules); err != nil {
			return err
		}
	}
	a := &agent{o: o}
	if o.Proxy != "" {
		from, to, ok := strings.Cut(o.Proxy, "=")
		if !ok {
			return fmt.Errorf("--proxy: %q is not LISTEN=TARGET", o.Proxy)
		}
		pl, err := net.Listen("tcp", from)
		if err != nil {
			return fmt.Errorf("--proxy: %w", err)
		}
		go relay(ctx, pl, to)
	}
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	go func() { <-ctx.Done(); l.Close() }()
	// The cluster script waits for this line on the VM's console port.
	fmt.Printf("agent ready: vm %d control %s\n", o.ID, o.Listen)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go a.serve(c)
	}
}

func loadModules(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	for _, m := range strings.Fields(string(b)) {
		if _, err := os.Stat("/sys/module/" + strings.TrimSuffix(m, ".ko")); err == nil {
			continue
		}
		if out, err := exec.Command("insmod", filepath.Join(dir, m)).CombinedOutput(); err != nil {
			return fmt.Errorf("insmod %s: %v: %s", m, err, out)
		}
	}
	return nil
}

func relay(ctx context.Context, l net.Listener, to string) {
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := net.DialTimeout("tcp", to, 5*time.Second)
			if err != nil {
				return
			}
			defer d.Close()
			go func() { io.Copy(d, c); d.(*net.TCPConn).CloseWrite() }()
			io.Copy(c, d)
		}()
	}
}

func (a *agent) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewScanner(c)
	r.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(c)
	for r.Scan() {
		var q request
		var resp response
		if err := json.Unmarshal(r.Bytes(), &q); err != nil {
			resp.Err = err.Error()
		} else {
			resp = a.do(q)
		}
		if enc.Encode(resp) != nil {
			return
		}
	}
}

func (a *agent) do(q request) response {
	switch q.Op {
	case "sh":
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", "-c", q.Cmd).CombinedOutput()
		if err != nil {
			return response{Out: string(out), Err: err.Error()}
		}
		return response{OK: true, Out: string(out)}
	case "start":
		pid, err := a.start()
		if err != nil {
			return response{Err: err.Error()}
		}
		return response{OK: true, Pid: pid}
	case "signal":
		return a.signal(q.Sig)
	case "pid":
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.node == nil {
			return response{OK: true}
		}
		return response{OK: true, Pid: a.node.Process.Pid}
	}
	return response{Err: fmt.Sprintf("unknown op %q", q.Op)}
}

// start runs `mu node` with the VM's config; its output goes to node.log.
func (a *agent) start() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.node != nil {
		return 0, fmt.Errorf("node already running (pid %d)", a.node.Process.Pid)
	}
	if a.logf == nil {
		f, err := os.OpenFile(filepath.Join(a.o.Dir, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return 0, err
		}
		a.logf = f
	}
	fmt.Fprintf(a.logf, "==== agent: starting mu node at %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(a.o.MuBin, "node", "--config", filepath.Join(a.o.Dir, "node.yaml"), "--rejoin", "auto")
	cmd.Stdout, cmd.Stderr = a.logf, a.logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	a.node = cmd
	done := make(chan struct{})
	a.done = done
	go func() {
		err := cmd.Wait()
		a.mu.Lock()
		fmt.Fprintf(a.logf, "==== agent: mu node exited at %s: %v\n", time.Now().UTC().Format(time.RFC3339Nano), err)
		if a.node == cmd {
			a.node = nil
		}
		a.mu.Unlock()
		close(done)
	}()
	return cmd.Process.Pid, nil
}

var signals = map[string]syscall.Signal{"KILL": syscall.SIGKILL, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT, "TERM": syscall.SIGTERM}

func (a *agent) signal(name string) response {
	sig, ok := signals[name]
	if !ok {
		return response{Err: fmt.Sprintf("unknown signal %q", name)}
	}
	a.mu.Lock()
	cmd, done := a.node, a.done
	a.mu.Unlock()
	if cmd == nil {
		return response{Err: "no node running"}
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return response{Err: err.Error()}
	}
	if sig == syscall.SIGKILL {
		// The caller restarts it next: wait until it is gone.
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			return response{Err: "node did not exit within 30 s of SIGKILL"}
		}
	}
	return response{OK: true, Pid: cmd.Process.Pid}
}
