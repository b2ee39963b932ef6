package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/hwmon/failslow"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/bootstrap"
	"github.com/rdmaconsensus/mu/rdma/verbs"
)

// ErrClosed: the node was closed. A proposal that was in flight when
// Close was called may or may not have committed.
var ErrClosed = consensus.ErrClosed

// Node is one running replica. Every method is safe from any goroutine,
// before, during and after Close.
type Node struct {
	cfg          Config
	log          *slog.Logger
	f            rdma.Fabric // what the replica runs over
	r            *consensus.Replica
	wallOffsetNs int64 // fabric clock -> Unix ns
	device       string
	started      time.Time

	// Owned when the node bootstrapped its own fabric.
	vf       *verbs.Fabric
	boot     *bootstrap.Bootstrapper
	bootCtx  context.Context // ends when the bootstrap is stopped
	bootStop context.CancelFunc
	bootWG   sync.WaitGroup // Serve, ConnectAll and redials: they touch vf

	// fabricMu guards the fabric against release while Status reads its
	// connections.
	fabricMu sync.RWMutex
	released bool

	redialMu   sync.Mutex
	redialing  map[rdma.NodeID]bool
	lastRedial map[rdma.NodeID]time.Time

	driveStop context.CancelFunc
	driveDone chan struct{}
	spinning  bool         // counted in spinNodes
	busy      atomic.Int64 // proposals in flight (idle-sleep keeps spinning)
	kick      chan struct{}

	events    chan Event
	dropped   atomic.Uint64
	watchStop chan struct{}
	watchDone chan struct{}

	termsMu        sync.Mutex
	terms          []Term
	leaderTerms    atomic.Uint64
	firstCommitDue atomic.Bool

	view     detectorView // under viewMu
	viewMu   sync.Mutex
	viewAtNs int64 // driver only

	closeOnce sync.Once
	closed    atomic.Bool
	closeErr  error
}

// Start runs one replica: it discovers the RDMA port, opens the verbs
// fabric, listens for and dials its peers over the bootstrap, and once a
// majority is connected (all of them, or a majority after waiting twice
// HandshakeTimeout) builds the replica and starts its driver. ctx bounds
// the connection phase only; the node then runs until Close. With
// Config.Fabric set it skips straight to the replica.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, started: time.Now(), kick: make(chan struct{}, 1),
		redialing: map[rdma.NodeID]bool{}, lastRedial: map[rdma.NodeID]time.Time{}}
	n.log = cfg.Logger
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.log = n.log.With("node", cfg.ID)
	if cfg.Poll == PollSpin {
		// Refused, not warned about: a busy-polling driver per node that
		// leaves no Go processor for proposers and timers stalls them
		// without an error.
		k := spinNodes.Add(1)
		if err := consensus.CheckBusyPoll(int(k)); err != nil {
			spinNodes.Add(-1)
			return nil, fmt.Errorf("%w: Poll %s: %w", ErrConfig, cfg.Poll, err)
		}
		n.spinning = true
	}
	if err := n.open(ctx); err != nil {
		n.release()
		return nil, err
	}
	n.wallOffsetNs = time.Now().UnixNano() - n.f.Now()
	cc := n.cfg.Consensus
	cc.Rejoining = cc.Rejoining || cfg.Rejoining
	userLC, userCommit, userCorrupt := cc.OnLeaderChange, cc.OnCommit, cc.OnCorruption
	cc.OnLeaderChange = func(c consensus.LeaderChange) {
		if userLC != nil {
			userLC(c)
		}
		n.onLeaderChange(c)
	}
	cc.OnCommit = func(i consensus.Index) {
		if userCommit != nil {
			userCommit(i)
		}
		n.onCommit(i)
	}
	cc.OnCorruption = func(c consensus.CorruptionReport) {
		if userCorrupt != nil {
			userCorrupt(c)
		}
		n.log.Error("committed slot failed its checksum; fencing", "index", c.Index)
		n.emit(&Corruption{ID: n.cfg.ID, Index: c.Index, At: n.wall(c.AtNs)})
	}
	r, err := consensus.New(n.f, cfg.StateMachine, cc)
	if err != nil {
		n.release()
		return nil, fmt.Errorf("node: replica: %w", err)
	}
	n.r = r
	n.initView()
	n.events = make(chan Event, eventQueue)
	if cfg.OnEvent != nil {
		go n.dispatch()
	}
	n.watchStop, n.watchDone = make(chan struct{}), make(chan struct{})
	go func() { defer close(n.watchDone); n.watch(n.watchStop) }()
	n.startDriver()
	n.log.Info("replica running", "poll", cfg.Poll.String(), "rejoining", cc.Rejoining, "members", cc.Members)
	return n, nil
}

// Close stops the node for good: the driver first (Close waits for it),
// failing every queued and in-flight proposal with ErrClosed, then the
// bootstrap, then the fabric it owns is released. It is idempotent, safe
// from any goroutine (also from OnEvent) but not from inside the state
// machine, which runs on the driver: Close would wait for itself.
func (n *Node) Close() error {
	if n == nil {
		return nil
	}
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.driveStop()
		<-n.driveDone
		n.closeErr = n.r.Close()
		close(n.watchStop)
		<-n.watchDone
		if err := n.release(); err != nil && n.closeErr == nil {
			n.closeErr = err
		}
		close(n.events) // no sender is left: the driver and the watcher stopped
		n.log.Info("closed")
	})
	return n.closeErr
}

// release stops the bootstrap and releases the fabric the node owns.
func (n *Node) release() error {
	n.redialMu.Lock()
	n.closed.Store(true) // no redial starts after this
	n.redialMu.Unlock()
	if n.bootStop != nil {
		n.bootStop()
	}
	n.bootWG.Wait()
	n.fabricMu.Lock()
	defer n.fabricMu.Unlock()
	n.released = true
	if n.spinning {
		spinNodes.Add(-1)
		n.spinning = false
	}
	if n.vf != nil {
		err := n.vf.Close()
		n.vf = nil
		return err
	}
	return nil
}

// Propose replicates cmd and blocks until it is committed and applied on
// this node, which must lead, or ctx ends. It returns the command's index
// and, when the state machine is a consensus.ResultApplier, its result
// appended to out[:0] (with enough capacity nothing is allocated). A
// follower returns a *consensus.NotLeaderError naming the leader. A nil
// error always comes with the result; ErrLeadershipLost, ErrClosed or a
// cancelled ctx leave the outcome unknown (see consensus.ResultApplier).
func (n *Node) Propose(ctx context.Context, cmd, out []byte) (consensus.Index, []byte, error) {
	if n == nil {
		return 0, nil, ErrClosed
	}
	if n.cfg.Poll == PollIdleSleep {
		n.busy.Add(1)
		defer n.busy.Add(-1)
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
	return n.r.ProposeResult(ctx, cmd, out)
}

// Barrier commits an empty command through the log: once it returns
// nil, every command acknowledged anywhere before the call has been
// applied here, so a read of the state machine (under its own lock) is
// linearizable. It needs the leader, like Propose. State machines see
// the empty command in Apply and must ignore it. ReadIndex gives the same
// guarantee without a log entry.
func (n *Node) Barrier(ctx context.Context) error {
	_, _, err := n.Propose(ctx, nil, nil)
	return err
}

// ReadIndex returns once a read of the state machine here is
// linearizable: this node leads and has applied every command
// acknowledged before the call (the index returned is applied). Under a
// read lease (consensus.Config.ReadLeaseNs) it answers at once, else the
// driver confirms leadership with one round of RDMA reads to a majority;
// no log entry is written, unlike Barrier. A follower returns a
// *consensus.NotLeaderError naming the leader.
func (n *Node) ReadIndex(ctx context.Context) (consensus.Index, error) {
	if n == nil {
		return 0, ErrClosed
	}
	if idx, ok := n.r.LeaseRead(); ok {
		return idx, nil
	}
	if n.cfg.Poll == PollIdleSleep {
		n.busy.Add(1)
		defer n.busy.Add(-1)
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
	return n.r.ReadIndex(ctx)
}

// Read calls fn, on the calling goroutine, once a read is linearizable
// (ReadIndex): fn reads the state machine under its own lock.
func (n *Node) Read(ctx context.Context, fn func()) error {
	if _, err := n.ReadIndex(ctx); err != nil {
		return err
	}
	fn()
	return nil
}

// TransferLeadership hands leadership to member to: this node, which must
// lead, stops taking proposals, waits until to holds every entry, and
// tells it to take over at once instead of waiting for the failure
// detector. It returns once to leads, or why not
// (consensus.TransferLeadership). Proposals made meanwhile fail with a
// *consensus.NotLeaderError naming to.
func (n *Node) TransferLeadership(ctx context.Context, to rdma.NodeID) error {
	if n == nil {
		return ErrClosed
	}
	if n.cfg.Poll == PollIdleSleep {
		n.busy.Add(1)
		defer n.busy.Add(-1)
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
	return n.r.TransferLeadership(ctx, to)
}

// ID is this node's id.
func (n *Node) ID() rdma.NodeID { return n.cfg.ID }

// IsLeader reports whether this node leads now.
func (n *Node) IsLeader() bool { return n != nil && n.r.IsLeader() }

// Leader is who this node's detector names leader, when known.
func (n *Node) Leader() (rdma.NodeID, bool) { return n.r.Leader() }

// Fence stops the replica leading, applying and accepting proposals until
// the process restarts; peers elect another leader. For a hardware
// monitor's verdict (hwmon's Verdict.Apply takes a *Node).
func (n *Node) Fence() { n.r.Fence() }

// SetDegraded marks the node not preferred as leader (or clears it).
func (n *Node) SetDegraded(on bool) { n.r.SetDegraded(on) }

// Fenced reports whether the replica fenced itself.
func (n *Node) Fenced() bool { return n.r.Fenced() }

// ProbeSummary is the leader's probe commit latency, for a hardware
// monitor's probe-latency row.
func (n *Node) ProbeSummary() failslow.ProbeSummary { return n.r.ProbeSummary() }

// FollowerLatency is the leader's fail-slow view of each follower.
func (n *Node) FollowerLatency() []consensus.FollowerLatency { return n.r.FollowerLatency() }

// ErrNoBootstrap: the node runs over a caller's fabric (Config.Fabric) and
// has no bootstrap to reconnect with.
var ErrNoBootstrap = errors.New("node: no bootstrap (Config.Fabric is set)")

// Self is this node's id (as consensus.Replica names it).
func (n *Node) Self() rdma.NodeID { return n.cfg.ID }

// Stats are the replica's counters as of its latest Step.
func (n *Node) Stats() consensus.Stats { return n.r.Stats() }

// CommitIndex is the highest index this node knows committed.
func (n *Node) CommitIndex() consensus.Index { return n.r.CommitIndex() }

// AppliedIndex is the highest index applied to the state machine here.
func (n *Node) AppliedIndex() consensus.Index { return n.r.AppliedIndex() }
