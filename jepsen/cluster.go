package jepsen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/rdma"
)

// Timings are the replica timings written into every node's config; a
// zero field keeps mu's default (which adapts to the measured RTT).
type Timings struct {
	ReadInterval      time.Duration
	PermissionTimeout time.Duration
	HandshakeTimeout  time.Duration
}

// Cluster is the VMs as scripts/softroce/cluster started them: one agent
// and one client endpoint per node, node i at 10.77.0.i.
type Cluster struct {
	Dir      string
	N        int
	Agents   []*Agent           // index i-1 is node i
	Clients  []*endpoint.Client // the harness's own calls (status, log)
	creds    *clustertls.Credentials
	cliPorts []int
}

// NewClient is a fresh connection to node id's client endpoint: each
// workload client has its own, since an endpoint.Client serializes calls.
func (c *Cluster) NewClient(id int) *endpoint.Client {
	return endpoint.NewClient("127.0.0.1:"+strconv.Itoa(c.cliPorts[id-1]),
		endpoint.DialTLS(c.creds.ClientConfig(rdma.NodeID(id))))
}

// ClusterFromEnv reads what scripts/softroce/cluster exports.
func ClusterFromEnv() (*Cluster, error) {
	dir := os.Getenv("MU_CLUSTER_DIR")
	if dir == "" {
		return nil, errors.New("MU_CLUSTER_DIR is not set: run under scripts/softroce/cluster")
	}
	ctl, err := ports("MU_CLUSTER_CTL")
	if err != nil {
		return nil, err
	}
	cli, err := ports("MU_CLUSTER_CLIENT")
	if err != nil {
		return nil, err
	}
	if len(ctl) != len(cli) || len(ctl) == 0 {
		return nil, fmt.Errorf("MU_CLUSTER_CTL has %d ports, MU_CLUSTER_CLIENT %d", len(ctl), len(cli))
	}
	c := &Cluster{Dir: dir, N: len(ctl), cliPorts: cli}
	for i, p := range ctl {
		c.Agents = append(c.Agents, NewAgent(i+1, "127.0.0.1:"+strconv.Itoa(p)))
	}
	if err := c.writeCredentials(); err != nil {
		return nil, err
	}
	for i := range cli {
		c.Clients = append(c.Clients, c.NewClient(i+1))
	}
	return c, nil
}

func ports(env string) ([]int, error) {
	var ps []int
	for _, f := range strings.Split(os.Getenv(env), ",") {
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a port list", env, os.Getenv(env))
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func (c *Cluster) certDir() string { return filepath.Join(c.Dir, "certs") }

func (c *Cluster) writeCredentials() error {
	d := c.certDir()
	if err := clustertls.InitDir(d, "mu-jepsen", 48*time.Hour); err != nil {
		return err
	}
	for i := 1; i <= c.N; i++ {
		if _, _, err := clustertls.IssueInDir(d, clustertls.NodeIdentity(rdma.NodeID(i)), 48*time.Hour); err != nil {
			return err
		}
	}
	cc, ck, err := clustertls.IssueInDir(d, clustertls.ClientIdentity("jepsen"), 48*time.Hour)
	if err != nil {
		return err
	}
	c.creds, err = clustertls.LoadFiles(filepath.Join(d, clustertls.CAFile), cc, ck)
	return err
}

// NodeConfig is node id's `mu node` file. Paths are the host's: the
// repository is shared at its own path in every VM.
func (c *Cluster) NodeConfig(id int, t Timings, state string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "id: %d\ncluster_id: 0x6d75\npeers:\n", id)
	for i := 1; i <= c.N; i++ {
		fmt.Fprintf(&b, "  - id: %d\n    address: 10.77.0.%d:7101\n    client_address: 10.77.0.%d:7201\n", i, i, i)
	}
	b.WriteString("rdma:\n  interface: eth0\n")
	if t != (Timings{}) {
		b.WriteString("timings:\n")
		if t.ReadInterval > 0 {
			fmt.Fprintf(&b, "  pullscore_read_interval: %s\n", t.ReadInterval)
		}
		if t.ReadInterval >= 10*time.Millisecond {
			// The probe cadence may not be shorter than the read interval.
			fmt.Fprintf(&b, "  probe_interval: %s\n", t.ReadInterval)
		}
		if t.PermissionTimeout > 0 {
			fmt.Fprintf(&b, "  permission_timeout: %s\n", t.PermissionTimeout)
		}
		if t.HandshakeTimeout > 0 {
			fmt.Fprintf(&b, "  handshake_timeout: %s\n", t.HandshakeTimeout)
		}
	}
	cert, key := clustertls.Files(c.certDir(), clustertls.NodeIdentity(rdma.NodeID(id)))
	fmt.Fprintf(&b, "security:\n  ca: %s\n  cert: %s\n  key: %s\n", filepath.Join(c.certDir(), clustertls.CAFile), cert, key)
	// One emulated CPU per VM: no core to spin on.
	b.WriteString("poll_mode: idle-sleep\nlog_size_bytes: 16777216\napplied_log_max_bytes: 268435456\n")
	fmt.Fprintf(&b, "initial_cluster_state: %s\n", state)
	return b.String()
}

// WriteConfigs writes every node's config with initial_cluster_state
// state: "new" for the first start, "existing" once a leader was elected
// (docs/deploy.md), so that a restarted node always rejoins.
func (c *Cluster) WriteConfigs(t Timings, state string) error {
	for i := 1; i <= c.N; i++ {
		if err := os.WriteFile(filepath.Join(c.Dir, fmt.Sprintf("vm%d", i), "node.yaml"), []byte(c.NodeConfig(i, t, state)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Start writes every node's config for a new cluster and starts every node.
func (c *Cluster) Start(t Timings) error {
	if err := c.WriteConfigs(t, "new"); err != nil {
		return err
	}
	for _, a := range c.Agents {
		if err := a.Start(); err != nil {
			return err
		}
	}
	return nil
}

// Status is the part of a node's `mu status` answer the harness reads.
type Status struct {
	ID          int             `json:"id"`
	Leader      int             `json:"leader"`
	LeaderKnown bool            `json:"leader_known"`
	IsLeader    bool            `json:"is_leader"`
	Fenced      bool            `json:"fenced"`
	Commit      consensus.Index `json:"commit_index"`
	Applied     consensus.Index `json:"applied_index"`
	Rejoining   bool            `json:"rejoining"`
	LeaderTerms uint64          `json:"leader_terms"`
}

func (c *Cluster) jsonCall(ctx context.Context, id int, typ byte, v any) error {
	t, b, err := c.Clients[id-1].Call(ctx, typ, nil)
	if err != nil {
		return err
	}
	if b, err = endpoint.DecodeBodyAnswer(t, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Status asks node id for its status.
func (c *Cluster) Status(ctx context.Context, id int) (Status, error) {
	var s Status
	err := c.jsonCall(ctx, id, endpoint.ReqStatus, &s)
	return s, err
}

// Statuses asks every node at once; a node that does not answer within
// timeout is absent from the map.
func (c *Cluster) Statuses(timeout time.Duration) map[int]Status {
	var mu sync.Mutex
	out := map[int]Status{}
	var wg sync.WaitGroup
	for id := 1; id <= c.N; id++ {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if s, err := c.Status(ctx, id); err == nil {
				mu.Lock()
				out[id] = s
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// LogEntry is one applied command.
type LogEntry struct {
	Index consensus.Index
	Cmd   []byte
}

// NodeLog is a node's applied log as `mu node` serves it; entries at or
// below From() came in a snapshot or were trimmed.
type NodeLog struct {
	Entries     []LogEntry
	RestoredAt  consensus.Index
	TrimmedAt   consensus.Index
	StateDigest uint64
	LastIndex   consensus.Index
}

// From is the newest index not held one by one.
func (l NodeLog) From() consensus.Index { return max(l.RestoredAt, l.TrimmedAt) }

// Log fetches node id's applied log.
func (c *Cluster) Log(ctx context.Context, id int) (NodeLog, error) {
	var a struct {
		Log NodeLog `json:"log"`
	}
	err := c.jsonCall(ctx, id, endpoint.ReqLog, &a)
	return a.Log, err
}

// Close drops every connection.
func (c *Cluster) Close() {
	for _, a := range c.Agents {
		a.Close()
	}
	for _, cl := range c.Clients {
		cl.Close()
	}
}
