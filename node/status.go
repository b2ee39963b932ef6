package node

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/pullscore"
	"github.com/rdmaconsensus/mu/rdma"
)

// Status is a node's state, as of the latest Step (the detector's part
// as of the latest millisecond).
type Status struct {
	ID          rdma.NodeID
	Leader      rdma.NodeID // the detector's choice, when LeaderKnown
	LeaderKnown bool
	IsLeader    bool
	Fenced      bool
	Closed      bool
	Rejoining   bool
	Commit      consensus.Index
	Applied     consensus.Index
	LeaderTerms uint64 // terms this node led
	// Voters are the voting members in the newest configuration this node
	// knows; the other members are learners.
	Voters   []rdma.NodeID
	Health   string // what this node advertises: healthy, degraded, fenced
	Device   string // the GID in use
	Uptime   time.Duration
	Pid      int
	Peers    []PeerStatus
	Detector pullscore.Stats
	// DetectorPeriod is the detector's current read period and
	// DetectorFailBound the silence after which it suspects a peer (both
	// adapt to the link).
	DetectorPeriod, DetectorFailBound time.Duration
	Replica                           consensus.Stats
	// FailSlow is, on the leader, the followers whose write latency is
	// fail-slow against their own baseline.
	FailSlow []consensus.FollowerLatency
	// EventsDropped counts events OnEvent was too slow to take.
	EventsDropped uint64
}

// PeerStatus is one peer as this node sees it.
type PeerStatus struct {
	ID        rdma.NodeID
	Score     int  // pull score, 0..ScoreMax
	Alive     bool // the detector's verdict
	Health    string
	Connected bool // the bootstrap connected its queue pairs
	// Conns is each plane's connection state and the access it grants.
	Conns string
}

// detectorView is the detector's state for Status, copied on the driver
// at most every viewEveryNs (the detector is not safe to read elsewhere).
// Its slice is allocated once: publishing allocates nothing.
type detectorView struct {
	peers  []peerView
	health pullscore.Health
	stats  pullscore.Stats
	period time.Duration
	bound  time.Duration
	valid  bool
}

type peerView struct {
	id     rdma.NodeID
	score  int
	alive  bool
	health pullscore.Health
}

const viewEveryNs = int64(time.Millisecond)

func (n *Node) initView() {
	for _, p := range n.cfg.peerIDs() {
		n.view.peers = append(n.view.peers, peerView{id: p})
	}
}

// publishView runs on the driver after a Step.
func (n *Node) publishView(now int64) {
	if now-n.viewAtNs < viewEveryNs {
		return
	}
	n.viewAtNs = now
	d := n.r.Detector()
	n.viewMu.Lock()
	for i := range n.view.peers {
		p := &n.view.peers[i]
		p.score, p.alive, p.health = d.Score(p.id), d.Alive(p.id), d.PeerHealth(p.id)
	}
	n.view.health, n.view.stats, n.view.valid = d.Health(), d.Stats(), true
	n.view.period, n.view.bound = time.Duration(d.PeriodNs()), time.Duration(d.FailBoundNs())
	n.viewMu.Unlock()
}

// Status returns the node's state. It allocates; it is for monitoring.
func (n *Node) Status() Status {
	st := Status{ID: n.cfg.ID, Device: n.device, Uptime: time.Since(n.started), Pid: os.Getpid(),
		Closed: n.closed.Load(), Rejoining: n.cfg.Rejoining || n.cfg.Consensus.Rejoining}
	st.Leader, st.LeaderKnown = n.r.Leader()
	st.IsLeader, st.Fenced = n.r.IsLeader(), n.r.Fenced()
	st.Commit, st.Applied = n.r.CommitIndex(), n.r.AppliedIndex()
	st.LeaderTerms = n.leaderTerms.Load()
	st.Voters = n.r.Voters()
	st.Replica = n.r.Stats()
	st.EventsDropped = n.dropped.Load()
	if st.IsLeader {
		for _, f := range n.r.FollowerLatency() {
			if f.FailSlow {
				st.FailSlow = append(st.FailSlow, f)
			}
		}
	}
	n.viewMu.Lock()
	st.Health, st.Detector = "starting", n.view.stats
	st.DetectorPeriod, st.DetectorFailBound = n.view.period, n.view.bound
	if n.view.valid {
		st.Health = n.view.health.String()
	}
	for _, p := range n.view.peers {
		st.Peers = append(st.Peers, PeerStatus{ID: p.id, Score: p.score, Alive: p.alive, Health: p.health.String()})
	}
	n.viewMu.Unlock()
	n.fabricMu.RLock()
	defer n.fabricMu.RUnlock()
	if n.released {
		return st
	}
	for i := range st.Peers {
		p := &st.Peers[i]
		if n.boot == nil {
			p.Connected = true
		} else {
			_, p.Connected = n.boot.Remote(p.ID)
		}
		var cs []string
		for pl := range rdma.NumPlanes {
			if c := n.f.Conn(p.ID, pl); c != nil {
				cs = append(cs, fmt.Sprintf("%s:%s/access=%d", pl, c.State(), c.RemoteAccess()))
			}
		}
		p.Conns = strings.Join(cs, " ")
	}
	return st
}
