package jepsen

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// The host's side of the control channel to each VM's agent (agent.go).

// errAgent is a control call the agent refused or failed.
var errAgent = errors.New("agent")

// Agent is the host's connection to one VM's agent.
type Agent struct {
	ID   int
	addr string
	mu   sync.Mutex
	c    net.Conn
	r    *bufio.Reader
}

// NewAgent returns a client of the agent at addr (not yet dialled).
func NewAgent(id int, addr string) *Agent { return &Agent{ID: id, addr: addr} }

func (g *Agent) call(q request, timeout time.Duration) (response, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if g.c == nil {
			c, err := net.DialTimeout("tcp", g.addr, 10*time.Second)
			if err != nil {
				return response{}, fmt.Errorf("vm %d agent: %w", g.ID, err)
			}
			g.c, g.r = c, bufio.NewReader(c)
		}
		g.c.SetDeadline(time.Now().Add(timeout))
		b, _ := json.Marshal(q)
		_, err := g.c.Write(append(b, '\n'))
		var line []byte
		if err == nil {
			line, err = g.r.ReadBytes('\n')
		}
		if err != nil {
			g.c.Close()
			g.c = nil
			if attempt == 0 && q.Op != "sh" {
				continue
			}
			return response{}, fmt.Errorf("vm %d agent: %w", g.ID, err)
		}
		var resp response
		if err := json.Unmarshal(line, &resp); err != nil {
			return response{}, fmt.Errorf("vm %d agent: %w", g.ID, err)
		}
		if !resp.OK {
			return resp, fmt.Errorf("%w: vm %d %s %s: %s %s", errAgent, g.ID, q.Op, q.Cmd+q.Sig, resp.Err, strings.TrimSpace(resp.Out))
		}
		return resp, nil
	}
}

// Sh runs a bash command line in the VM.
func (g *Agent) Sh(cmd string) (string, error) {
	r, err := g.call(request{Op: "sh", Cmd: cmd}, 90*time.Second)
	return r.Out, err
}

// Start starts the VM's node.
func (g *Agent) Start() error { _, err := g.call(request{Op: "start"}, 30*time.Second); return err }

// Signal sends KILL, STOP, CONT or TERM to the VM's node; KILL returns
// once it has exited.
func (g *Agent) Signal(sig string) error {
	_, err := g.call(request{Op: "signal", Sig: sig}, 60*time.Second)
	return err
}

// Running says whether the VM's node process exists.
func (g *Agent) Running() (bool, error) {
	r, err := g.call(request{Op: "pid"}, 30*time.Second)
	return r.Pid != 0, err
}

// Close drops the connection.
func (g *Agent) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.c != nil {
		g.c.Close()
		g.c = nil
	}
}
