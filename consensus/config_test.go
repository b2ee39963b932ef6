package consensus

import (
	"errors"
	"strings"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

func TestDefaultConfigValidWithMembers(t *testing.T) {
	c := DefaultConfig()
	c.Members = []rdma.NodeID{1, 2, 3}
	if err := c.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field  string
		mutate func(*Config)
	}{
		{"Members", func(c *Config) { c.Members = []rdma.NodeID{1, 2} }},
		{"Members", func(c *Config) { c.Members = []rdma.NodeID{1, 2, 2} }},
		{"LogSlots", func(c *Config) { c.LogSlots = 8 }},
		{"MaxPayloadBytes", func(c *Config) { c.MaxPayloadBytes = 4 }},
		{"MaxInflightSlots", func(c *Config) { c.MaxInflightSlots = c.LogSlots }},
		{"ReadWindowSlots", func(c *Config) { c.ReadWindowSlots = 0 }},
		{"RecoveryReadBytes", func(c *Config) { c.RecoveryReadBytes = -1 }},
		{"MaxBulkWriteBytes", func(c *Config) { c.MaxBulkWriteBytes = 10 }},
		{"MaxWriteBytes", func(c *Config) { c.MaxWriteBytes = 100 }},
		{"MaxOutstandingWrites", func(c *Config) { c.MaxOutstandingWrites = 20 }},
		{"SubmitQueue", func(c *Config) { c.SubmitQueue = 0 }},
		{"SnapshotMaxBytes", func(c *Config) { c.SnapshotMaxBytes = -1 }},
		{"CommitPropagationNs", func(c *Config) { c.CommitPropagationNs = 0 }},
		{"ElectionTimeoutNs", func(c *Config) { c.ElectionTimeoutNs = 10 }},
		{"HeaderPollNs", func(c *Config) { c.HeaderPollNs = 0 }},
		{"CorruptConfirmNs", func(c *Config) { c.CorruptConfirmNs = -1 }},
		{"MaxIdleNs", func(c *Config) { c.MaxIdleNs = 0 }},
		{"LeaderStableNs", func(c *Config) { c.LeaderStableNs = -1 }},
		{"PullScore", func(c *Config) { c.PullScore.ReadIntervalNs = 0 }},
		{"Permissions", func(c *Config) { c.Permissions.PollIntervalNs = 0 }},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		c.Members = []rdma.NodeID{1, 2, 3}
		tc.mutate(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: invalid value accepted", tc.field)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not wrap ErrInvalidConfig or name the field", tc.field, err)
		}
	}
}

func TestNotLeaderErrorMatchesSentinel(t *testing.T) {
	var err error = &NotLeaderError{Leader: 3, Known: true}
	if !errors.Is(err, ErrNotLeader) {
		t.Fatal("NotLeaderError does not match ErrNotLeader")
	}
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.Leader != 3 {
		t.Fatalf("errors.As gave %+v", nl)
	}
	if !strings.Contains(err.Error(), "node 3") {
		t.Fatalf("message %q does not name the leader", err)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	c := newCluster(t, 1, 3, nil)
	cfg := c.cfg
	f := c.w.Node(1)
	if _, err := New(f, nil, cfg); err == nil {
		t.Error("nil state machine accepted")
	}
	bad := cfg
	bad.Members = []rdma.NodeID{2, 3, 4}
	if _, err := New(f, &nopSM{}, bad); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Members") {
		t.Errorf("members without this node: %v", err)
	}
	big := cfg
	big.LogSlots = 4 * cfg.LogSlots // needs a larger region than the node has
	if _, err := New(f, &nopSM{}, big); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "RegionBytes") {
		t.Errorf("region too small: %v", err)
	}
}
