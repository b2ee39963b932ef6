package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// HashicorpTuning is the hashicorp/raft configuration under test.
type HashicorpTuning struct {
	HeartbeatTimeout   time.Duration // follower without contact this long starts an election
	ElectionTimeout    time.Duration // candidate without a result this long retries
	LeaderLeaseTimeout time.Duration // leader without a quorum this long steps down
	CommitTimeout      time.Duration // idle leader pushes its commit index this often
}

// DefaultHashicorpTuning is the library's floor: ValidateConfig rejects a
// heartbeat, election or lease timeout under 5 ms and a commit timeout under
// 1 ms. A follower starts an election 5-10 ms after its last contact.
func DefaultHashicorpTuning() HashicorpTuning {
	return HashicorpTuning{
		HeartbeatTimeout: 5 * time.Millisecond, ElectionTimeout: 5 * time.Millisecond,
		LeaderLeaseTimeout: 5 * time.Millisecond, CommitTimeout: time.Millisecond,
	}
}

func (t HashicorpTuning) String() string {
	return fmt.Sprintf("hashicorp/raft x3, InmemStore, InmemTransport, heartbeat %s, election %s, lease %s, commit %s, pre-vote on",
		t.HeartbeatTimeout, t.ElectionTimeout, t.LeaderLeaseTimeout, t.CommitTimeout)
}

// countingFSM applies nothing but counts; the measurement is of the
// library, not of a state machine.
type countingFSM struct{ applied uint64 }

func (f *countingFSM) Apply(*raft.Log) interface{} { f.applied++; return nil }

func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) { return emptySnapshot{}, nil }

func (f *countingFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

type emptySnapshot struct{}

func (emptySnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (emptySnapshot) Release()                             {}

type hcCluster struct {
	rafts []*raft.Raft
	trans []*raft.InmemTransport
	addrs []raft.ServerAddress
}

func newHashicorpCluster(n int, tuning HashicorpTuning) (*hcCluster, error) {
	c := &hcCluster{}
	var servers []raft.Server
	for i := 0; i < n; i++ {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("node%d", i+1)))
		c.addrs = append(c.addrs, addr)
		c.trans = append(c.trans, tr)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(addr), Address: addr})
	}
	c.connectAll()
	for i := 0; i < n; i++ {
		cfg := raft.DefaultConfig()
		cfg.LocalID = raft.ServerID(c.addrs[i])
		cfg.HeartbeatTimeout = tuning.HeartbeatTimeout
		cfg.ElectionTimeout = tuning.ElectionTimeout
		cfg.LeaderLeaseTimeout = tuning.LeaderLeaseTimeout
		cfg.CommitTimeout = tuning.CommitTimeout
		// No snapshots during the run: they would add pauses unrelated to
		// replication.
		cfg.SnapshotThreshold = 1 << 40
		cfg.SnapshotInterval = 24 * time.Hour
		cfg.Logger = hclog.NewNullLogger()
		store := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(cfg, store, store, snaps, c.trans[i], raft.Configuration{Servers: servers}); err != nil {
			c.close()
			return nil, fmt.Errorf("hashicorp raft node %d bootstrap: %w", i+1, err)
		}
		r, err := raft.NewRaft(cfg, &countingFSM{}, store, store, snaps, c.trans[i])
		if err != nil {
			c.close()
			return nil, fmt.Errorf("hashicorp raft node %d: %w", i+1, err)
		}
		c.rafts = append(c.rafts, r)
	}
	return c, nil
}

func (c *hcCluster) connectAll() {
	for i, a := range c.trans {
		for j, b := range c.trans {
			if i != j {
				a.Connect(c.addrs[j], b)
			}
		}
	}
}

// isolate cuts node i off in both directions.
func (c *hcCluster) isolate(i int) {
	c.trans[i].DisconnectAll()
	for j, t := range c.trans {
		if j != i {
			t.Disconnect(c.addrs[i])
		}
	}
}

func (c *hcCluster) close() {
	for _, r := range c.rafts {
		_ = r.Shutdown().Error()
	}
}

// stableLeader waits until exactly one node leads, the others follow it and
// every node has applied the same index.
func (c *hcCluster) stableLeader(ctx context.Context) (int, error) {
	for {
		leader, leaders := -1, 0
		for i, r := range c.rafts {
			if r.State() == raft.Leader {
				leader = i
				leaders++
			}
		}
		if leaders == 1 {
			ok := true
			want := c.rafts[leader].AppliedIndex()
			for i, r := range c.rafts {
				if addr, _ := r.LeaderWithID(); addr != c.addrs[leader] || r.AppliedIndex() != want || (i != leader && r.State() != raft.Follower) {
					ok = false
				}
			}
			if ok {
				return leader, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("hashicorp raft: no stable leader: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// RunHashicorp measures hashicorp/raft.
func RunHashicorp(ctx context.Context, cfg Config, tuning HashicorpTuning) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := newHashicorpCluster(3, tuning)
	if err != nil {
		return nil, err
	}
	defer c.close()
	res := newResult("hashicorp-raft", tuning.String())
	return measure[int](ctx, cfg, res, c)
}

func (c *hcCluster) failover(ctx context.Context, cfg Config, nextID *uint64) (total, elected time.Duration, err error) {
	sctx, cancel := context.WithTimeout(ctx, cfg.FailoverDeadline)
	defer cancel()
	old, err := c.stableLeader(sctx)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	c.isolate(old)
	for {
		next, err := c.awaitLeader(sctx, old)
		if err != nil {
			return 0, 0, err
		}
		if elected == 0 {
			elected = time.Since(start)
		}
		*nextID++
		err = c.rafts[next].Apply(newPayload(cfg.PayloadBytes, *nextID), cfg.ProposalTimeout).Error()
		if err == nil {
			break
		}
		// Leadership moved again before the commit: find the next leader.
		if sctx.Err() != nil || !(errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrEnqueueTimeout)) {
			return 0, 0, fmt.Errorf("new leader %s committed nothing: %w", c.addrs[next], err)
		}
	}
	total = time.Since(start)
	c.connectAll()
	if _, err := c.stableLeader(sctx); err != nil {
		return 0, 0, fmt.Errorf("after healing: %w", err)
	}
	return total, elected, nil
}

// awaitLeader polls until a node other than old leads.
func (c *hcCluster) awaitLeader(ctx context.Context, old int) (int, error) {
	for {
		for i, r := range c.rafts {
			if i != old && r.State() == raft.Leader {
				return i, nil
			}
		}
		if ctx.Err() != nil {
			return -1, fmt.Errorf("no new leader: %w", ctx.Err())
		}
		// Spin, yielding: time.Sleep would oversleep by up to a millisecond
		// and inflate the failover measured.
		runtime.Gosched()
	}
}

func (c *hcCluster) propose(leader int, data []byte, id uint64, timeout time.Duration) error {
	return c.rafts[leader].Apply(data, timeout).Error()
}
