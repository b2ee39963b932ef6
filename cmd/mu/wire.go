package main

import (
	"context"
	"encoding/json"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/endpoint"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
)

// The client endpoint's protocol and server are package endpoint's.
const (
	reqPropose = endpoint.ReqPropose
	reqStatus  = endpoint.ReqStatus
	reqLog     = endpoint.ReqLog
	reqRejoin  = endpoint.ReqRejoin
	reqTerms   = endpoint.ReqTerms

	respOK = endpoint.RespOK
)

// nodeStatus is what `mu status` shows of one node.
type nodeStatus struct {
	ID          rdma.NodeID            `json:"id"`
	Leader      rdma.NodeID            `json:"leader"`
	LeaderKnown bool                   `json:"leader_known"`
	IsLeader    bool                   `json:"is_leader"`
	Fenced      bool                   `json:"fenced"`
	Commit      consensus.Index        `json:"commit_index"`
	Applied     consensus.Index        `json:"applied_index"`
	Scores      map[rdma.NodeID]int    `json:"scores"`
	Alive       map[rdma.NodeID]bool   `json:"alive"`
	PeerHealth  map[rdma.NodeID]string `json:"peer_health"`
	Health      string                 `json:"health"`       // own advertised health
	Hardware    string                 `json:"hardware"`     // hwmon verdict
	HardwareWhy []string               `json:"hardware_why"` // its reasons
	Device      string                 `json:"device"`
	Rejoining   bool                   `json:"rejoining"`
	LeaderTerms uint64                 `json:"leader_terms"`
	// Voters are the voting members in the newest configuration this
	// node knows; the other peers are learners.
	Voters   []rdma.NodeID `json:"voters"`
	UptimeNs int64         `json:"uptime_ns"`
	Pid      int           `json:"pid"`
	// Conns is each peer's connection state per plane and the access it
	// grants, for diagnosis.
	Conns map[rdma.NodeID]string `json:"conns"`
	// Detector counts reads posted, failed and late.
	Detector pullscore.Stats `json:"detector"`
	// FailSlow is, on the leader, each fail-slow follower's layer-2 state
	// (write-latency p99 against its own baseline).
	FailSlow map[rdma.NodeID]string `json:"fail_slow,omitempty"`
	// CommitP50Ns and CommitP99Ns are the commit latency of the proposals
	// this node took in the last commitWindowAge (CommitSamples of them;
	// none on a follower): from the endpoint's call to its answer.
	CommitP50Ns   int64 `json:"commit_p50_ns,omitempty"`
	CommitP99Ns   int64 `json:"commit_p99_ns,omitempty"`
	CommitSamples int   `json:"commit_samples,omitempty"`
}

// logAnswer is a node's applied log and leader-change history.
type logAnswer struct {
	Log   nodeLog         `json:"log"`
	Terms []failoverSteps `json:"terms"`
}

// nodeClient is one connection to a node's client endpoint.
type nodeClient struct{ c *endpoint.Client }

func newNodeClient(addr string) *nodeClient { return newNodeClientDial(addr, nil) }

// newNodeClientDial dials with dial (nil: plain TCP).
func newNodeClientDial(addr string, dial endpoint.DialFunc) *nodeClient {
	return &nodeClient{endpoint.NewClient(addr, dial)}
}

// tlsDial is the DialFunc to reach node want (0: any node) with creds,
// or nil (plain TCP) without credentials.
func tlsDial(creds *clustertls.Credentials, want rdma.NodeID) endpoint.DialFunc {
	if creds == nil {
		return nil
	}
	return endpoint.DialTLS(creds.ClientConfig(want))
}

func (c *nodeClient) close() { c.c.Close() }

func (c *nodeClient) call(ctx context.Context, typ byte, body []byte) (byte, []byte, error) {
	return c.c.Call(ctx, typ, body)
}

// propose asks the node to replicate cmd.
func (c *nodeClient) propose(ctx context.Context, cmd []byte) (consensus.Index, error) {
	t, b, err := c.call(ctx, reqPropose, cmd)
	if err != nil {
		return 0, err
	}
	return endpoint.DecodeProposeAnswer(t, b)
}

func (c *nodeClient) jsonCall(ctx context.Context, typ byte, v any) error {
	t, b, err := c.call(ctx, typ, nil)
	if err != nil {
		return err
	}
	if b, err = endpoint.DecodeBodyAnswer(t, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (c *nodeClient) status(ctx context.Context) (nodeStatus, error) {
	var s nodeStatus
	err := c.jsonCall(ctx, reqStatus, &s)
	return s, err
}

func (c *nodeClient) log(ctx context.Context) (logAnswer, error) {
	var l logAnswer
	err := c.jsonCall(ctx, reqLog, &l)
	return l, err
}

func (c *nodeClient) terms(ctx context.Context) ([]failoverSteps, error) {
	var t []failoverSteps
	err := c.jsonCall(ctx, reqTerms, &t)
	return t, err
}

func (c *nodeClient) rejoin(ctx context.Context, id rdma.NodeID) error {
	t, b, err := c.call(ctx, reqRejoin, endpoint.EncodeRejoin(id))
	if err != nil {
		return err
	}
	_, err = endpoint.DecodeBodyAnswer(t, b)
	return err
}
