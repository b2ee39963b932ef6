package peers

import (
	"context"
	"fmt"
	"io"
	"log"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// EtcdTuning is the etcd raft configuration under test.
type EtcdTuning struct {
	TickInterval  time.Duration // wall time per raft tick
	ElectionTicks int           // election timeout, in ticks (randomised up to 2x by raft)
	HeartbeatTick int           // heartbeat interval, in ticks
}

// DefaultEtcdTuning is the fastest tuning that stays free of spurious
// elections in the commit-latency run on a shared 2-core machine: a 500 µs
// tick and a 10-tick election timeout (5-10 ms after raft's randomisation,
// the same as hashicorp's floor), heartbeat every tick, PreVote and
// CheckQuorum on (an isolated leader steps down and cannot disrupt the
// cluster when it returns).
func DefaultEtcdTuning() EtcdTuning {
	return EtcdTuning{TickInterval: 500 * time.Microsecond, ElectionTicks: 10, HeartbeatTick: 1}
}

func (t EtcdTuning) String() string {
	return fmt.Sprintf("go.etcd.io/raft/v3 RawNode x3, MemoryStorage, Go-channel transport, tick %s, election %d ticks, heartbeat %d tick, PreVote+CheckQuorum",
		t.TickInterval, t.ElectionTicks, t.HeartbeatTick)
}

// leaderEvent reports that node id became leader.
type leaderEvent struct {
	id   uint64
	term uint64
	at   time.Time
}

type etcdCluster struct {
	tuning   EtcdTuning
	nodes    []*etcdNode
	isolated []atomic.Bool // by node id; index 0 unused
	leaderc  chan leaderEvent
}

// etcdNode is one replica: a RawNode driven by its own goroutine, which is
// the only one that touches rn and storage.
type etcdNode struct {
	id      uint64
	c       *etcdCluster
	rn      *raft.RawNode
	storage *raft.MemoryStorage
	inbox   chan *pb.Message
	propc   chan []byte
	// appliedc carries the ids of proposals this node applied.
	appliedc chan uint64
	stop     chan struct{}
	done     chan struct{}

	// Published by the node's goroutine for the driver.
	isLeader atomic.Bool
	lead     atomic.Uint64
	term     atomic.Uint64
	applied  atomic.Uint64
}

func newEtcdCluster(n int, tuning EtcdTuning) (*etcdCluster, error) {
	c := &etcdCluster{tuning: tuning, isolated: make([]atomic.Bool, n+1), leaderc: make(chan leaderEvent, 64)}
	voters := make([]uint64, n)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	quiet := &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}
	for _, id := range voters {
		st := raft.NewMemoryStorage()
		// Start every node from the same snapshot naming all voters; no
		// configuration entries need to be applied.
		if err := st.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			ConfState: &pb.ConfState{Voters: voters}, Index: new(uint64(1)), Term: new(uint64(1)),
		}}); err != nil {
			return nil, err
		}
		rn, err := raft.NewRawNode(&raft.Config{
			ID: id, ElectionTick: tuning.ElectionTicks, HeartbeatTick: tuning.HeartbeatTick,
			Storage: st, Applied: 1, MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256,
			MaxUncommittedEntriesSize: 1 << 30, PreVote: true, CheckQuorum: true, Logger: quiet,
		})
		if err != nil {
			return nil, fmt.Errorf("etcd raft node %d: %w", id, err)
		}
		c.nodes = append(c.nodes, &etcdNode{
			id: id, c: c, rn: rn, storage: st,
			inbox: make(chan *pb.Message, 4096), propc: make(chan []byte, 16), appliedc: make(chan uint64, 4096),
			stop: make(chan struct{}), done: make(chan struct{}),
		})
	}
	if err := c.nodes[0].rn.Campaign(); err != nil {
		return nil, err
	}
	for _, nd := range c.nodes {
		go nd.run()
	}
	return c, nil
}

func (c *etcdCluster) close() {
	for _, nd := range c.nodes {
		close(nd.stop)
		<-nd.done
	}
}

// send delivers m unless either end is isolated. A full inbox drops the
// message, as a lossy network would; raft retransmits.
func (c *etcdCluster) send(m *pb.Message) {
	from, to := m.GetFrom(), m.GetTo()
	if c.isolated[from].Load() || c.isolated[to].Load() {
		return
	}
	select {
	case c.nodes[to-1].inbox <- m:
	default:
	}
}

func (n *etcdNode) run() {
	defer close(n.done)
	tick := time.NewTicker(n.c.tuning.TickInterval)
	defer tick.Stop()
	n.process()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
			n.rn.Tick()
		case m := <-n.inbox:
			_ = n.rn.Step(m)
			// Take whatever else has arrived before handling Ready, as the
			// etcd server loop does, so one Ready covers a batch.
			for more := true; more; {
				select {
				case m := <-n.inbox:
					_ = n.rn.Step(m)
				default:
					more = false
				}
			}
		case data := <-n.propc:
			// A dropped proposal (no leader here) is noticed by the
			// proposer's timeout.
			_ = n.rn.Propose(data)
		}
		n.process()
	}
}

// process does what a Ready asks, in the order raft requires with
// synchronous storage: persist, send, apply, advance.
func (n *etcdNode) process() {
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		if rd.SoftState != nil {
			n.lead.Store(rd.SoftState.Lead)
			wasLeader := n.isLeader.Load()
			nowLeader := rd.SoftState.RaftState == raft.StateLeader
			n.isLeader.Store(nowLeader)
			if nowLeader && !wasLeader {
				select {
				case n.c.leaderc <- leaderEvent{id: n.id, term: n.rn.BasicStatus().GetTerm(), at: time.Now()}:
				default:
				}
			}
		}
		if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
			_ = n.storage.SetHardState(rd.HardState)
			n.term.Store(rd.HardState.GetTerm())
		}
		if rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot) {
			_ = n.storage.ApplySnapshot(rd.Snapshot)
		}
		if len(rd.Entries) > 0 {
			_ = n.storage.Append(rd.Entries)
		}
		for _, m := range rd.Messages {
			n.c.send(m)
		}
		for _, e := range rd.CommittedEntries {
			if e.GetType() == pb.EntryNormal {
				if id, ok := payloadID(e.GetData()); ok && n.isLeader.Load() {
					select {
					case n.appliedc <- id:
					default:
					}
				}
			}
			n.applied.Store(e.GetIndex())
		}
		n.rn.Advance(rd)
	}
}

// stableLeader waits until exactly one node leads, every node that is not
// isolated follows it, and all of them have applied the same index.
func (c *etcdCluster) stableLeader(ctx context.Context) (*etcdNode, error) {
	for {
		var leader *etcdNode
		leaders := 0
		for _, nd := range c.nodes {
			if nd.isLeader.Load() && !c.isolated[nd.id].Load() {
				leader = nd
				leaders++
			}
		}
		if leaders == 1 {
			ok := true
			for _, nd := range c.nodes {
				if nd.lead.Load() != leader.id || nd.applied.Load() != leader.applied.Load() || nd.term.Load() != leader.term.Load() {
					ok = false
				}
			}
			if ok {
				return leader, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("etcd raft: no stable leader: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// propose hands data (carrying id) to nd and waits until nd applies it.
func (nd *etcdNode) propose(data []byte, id uint64, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case nd.propc <- data:
	case <-deadline.C:
		return errTimeout
	}
	for {
		select {
		case got := <-nd.appliedc:
			if got == id {
				return nil
			}
		case <-deadline.C:
			return errTimeout
		}
	}
}

// RunEtcd measures etcd raft.
func RunEtcd(ctx context.Context, cfg Config, tuning EtcdTuning) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := newEtcdCluster(3, tuning)
	if err != nil {
		return nil, err
	}
	defer c.close()
	res := newResult("etcd-raft", tuning.String())
	return measure[*etcdNode](ctx, cfg, res, c)
}

// failover isolates the current leader, waits for a new one, commits one
// proposal through it and heals the partition. It returns the time from
// isolation to that commit and from isolation to the election.
func (c *etcdCluster) failover(ctx context.Context, cfg Config, nextID *uint64) (total, elected time.Duration, err error) {
	sctx, cancel := context.WithTimeout(ctx, cfg.FailoverDeadline)
	defer cancel()
	old, err := c.stableLeader(sctx)
	if err != nil {
		return 0, 0, err
	}
	oldTerm := old.term.Load()
	for drained := false; !drained; {
		select {
		case <-c.leaderc:
		default:
			drained = true
		}
	}
	start := time.Now()
	c.isolated[old.id].Store(true)
	var ev leaderEvent
	for ev.id == 0 {
		select {
		case e := <-c.leaderc:
			if e.id != old.id && e.term > oldTerm {
				ev = e
			}
		case <-sctx.Done():
			return 0, 0, fmt.Errorf("no new leader: %w", sctx.Err())
		}
	}
	elected = ev.at.Sub(start)
	next := c.nodes[ev.id-1]
	for {
		*nextID++
		id := *nextID
		err := next.propose(newPayload(cfg.PayloadBytes, id), id, cfg.ProposalTimeout)
		if err == nil {
			break
		}
		if sctx.Err() != nil {
			return 0, 0, fmt.Errorf("new leader %d committed nothing: %w", next.id, err)
		}
	}
	total = time.Since(start)
	c.isolated[old.id].Store(false)
	if _, err := c.stableLeader(sctx); err != nil {
		return 0, 0, fmt.Errorf("after healing: %w", err)
	}
	return total, elected, nil
}

func (c *etcdCluster) propose(leader *etcdNode, data []byte, id uint64, timeout time.Duration) error {
	return leader.propose(data, id, timeout)
}
