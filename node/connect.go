package node

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/rdmaconsensus/mu/clustertls"
	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/quorum"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/bootstrap"
	"github.com/rdmaconsensus/mu/rdma/discover"
	"github.com/rdmaconsensus/mu/rdma/verbs"
)

// open sets n.f: the caller's fabric, or a verbs fabric on the discovered
// port connected to a majority of the peers through the bootstrap.
func (n *Node) open(ctx context.Context) error {
	cfg := &n.cfg
	if cfg.Fabric != nil {
		n.f = cfg.Fabric
		n.device = "caller's fabric"
		return nil
	}
	if cfg.Insecure {
		n.log.Warn("INSECURE: the bootstrap runs in plain TCP without authentication (Config.Insecure)")
	}
	t0 := time.Now()
	gid, err := (&discover.Discovery{}).Discover(cfg.Device)
	if err != nil {
		return fmt.Errorf("node: discovering the RDMA port (Device): %w", err)
	}
	n.device = gid.String()
	peers := cfg.peerIDs()
	vc := verbs.DefaultConfig()
	vc.Self, vc.ClusterID, vc.Peers = cfg.ID, cfg.ClusterID, peers
	vc.Device, vc.Port, vc.GIDIndex = gid.Device, uint8(gid.Port), gid.Index
	vc.RegionBytes = int(cfg.Consensus.RegionBytes())
	vc.BackgroundWriteOffset, vc.BackgroundWriteBytes = backgroundWords(consensus.NewLayout(cfg.Consensus))
	vf, err := verbs.New(vc)
	if err != nil {
		return fmt.Errorf("node: verbs fabric on %s: %w", gid, err)
	}
	n.vf = vf
	n.f = vf
	n.log.Info("rdma fabric open", "gid", gid.String(), "region_bytes", vc.RegionBytes,
		"log_slots", cfg.Consensus.LogSlots, "took", time.Since(t0))

	bc := bootstrap.Config{
		ClusterID: cfg.ClusterID, Self: cfg.ID, Peers: peers,
		Timeout: cfg.handshakeTimeout(), Peering: vf.Peering(),
		OnInbound: func(remote net.Addr, peer rdma.NodeID, err error) {
			if err != nil {
				n.log.Warn("bootstrap handshake refused", "remote", remote.String(), "peer", peer, "err", err)
			}
		},
	}
	if c := cfg.Credentials; c != nil {
		bc.ServerTLS, bc.ClientTLS, bc.PeerID = c.ServerConfig(clustertls.OnlyNodes), c.ClientConfig, clustertls.PeerNode
	}
	b, err := bootstrap.New(bc)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.boot = b
	self := cfg.self()
	ln, err := net.Listen("tcp", self.Address)
	if err != nil {
		return fmt.Errorf("node: bootstrap listener (Peers[id=%d].Address): %w", cfg.ID, err)
	}
	bctx, cancel := context.WithCancel(context.Background())
	n.bootCtx, n.bootStop = bctx, cancel
	addrs := map[rdma.NodeID]string{}
	for _, p := range cfg.Peers {
		if p.ID != cfg.ID {
			addrs[p.ID] = p.Address
		}
	}
	n.bootWG.Add(2)
	go func() { defer n.bootWG.Done(); _ = b.Serve(bctx, ln) }()
	go func() {
		defer n.bootWG.Done()
		if _, err := b.ConnectAll(bctx, addrs); err != nil && bctx.Err() == nil {
			n.log.Warn("bootstrap", "err", err)
		}
		// From then on, redial a higher peer whose link is lost (its
		// background connection, never revoked, stays down across a
		// handshake timeout), spaced by backoff.
		_ = b.Keep(bctx, addrs, cfg.handshakeTimeout(),
			func(p rdma.NodeID) bool { return vf.Conn(p, rdma.PlaneBackground).State() != rdma.ConnReady },
			func(p rdma.NodeID, err error) {
				if err != nil {
					n.log.Warn("redialing a lost peer", "peer", p, "err", err)
				} else {
					n.log.Info("redialed a lost peer", "peer", p)
				}
			})
	}()

	// Start once every peer is connected, or a majority after a grace
	// period, so a node restarting while another is down still joins.
	t1 := time.Now()
	majority := quorum.Majority(len(cfg.Consensus.Members))
	allBy := t1.Add(2 * cfg.handshakeTimeout())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		k := 1 + n.connectedPeers()
		if k == len(cfg.Consensus.Members) || k >= majority && time.Now().After(allBy) {
			n.log.Info("connected", "peers", k-1, "of", len(peers), "took", time.Since(t1))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: connecting to peers (%d of %d connected): %w", k-1, len(peers), ctx.Err())
		case <-tick.C:
		}
	}
}

// connectedPeers counts the peers the bootstrap has connected.
func (n *Node) connectedPeers() int {
	if n.boot == nil {
		return len(n.cfg.Consensus.Members) - 1
	}
	k := 0
	for _, p := range n.cfg.peerIDs() {
		if _, ok := n.boot.Remote(p); ok {
			k++
		}
	}
	return k
}

// Reconnect runs a new bootstrap handshake with peer, which restarted:
// of each pair the lower id dials, so a restarted node with a higher id
// cannot reach this one by itself and asks for it. It returns at once;
// the handshake runs in the background, at most one per peer per
// HandshakeTimeout. Only peers with a higher id are dialed.
func (n *Node) Reconnect(peer rdma.NodeID) error {
	if n.boot == nil {
		return ErrNoBootstrap
	}
	addr := ""
	for _, p := range n.cfg.Peers {
		if p.ID == peer && p.ID != n.cfg.ID {
			addr = p.Address
		}
	}
	if addr == "" {
		return fmt.Errorf("node: Reconnect: %d is not a peer", peer)
	}
	n.redialMu.Lock()
	defer n.redialMu.Unlock()
	if n.closed.Load() {
		return ErrClosed
	}
	hs := n.cfg.handshakeTimeout()
	if peer <= n.cfg.ID || n.redialing[peer] || time.Since(n.lastRedial[peer]) < hs {
		return nil
	}
	n.lastRedial[peer] = time.Now()
	n.redialing[peer] = true
	n.bootWG.Add(1)
	go func() {
		defer n.bootWG.Done()
		ctx, cancel := context.WithTimeout(n.bootCtx, 10*hs)
		defer cancel()
		start := time.Now()
		if _, err := n.boot.Exchange(ctx, peer, addr); err != nil {
			n.log.Warn("reconnecting to a restarted peer", "peer", peer, "err", err)
		} else {
			n.log.Info("reconnected to a restarted peer", "peer", peer, "took", time.Since(start))
		}
		n.redialMu.Lock()
		delete(n.redialing, peer)
		n.redialMu.Unlock()
	}()
	return nil
}

// backgroundWords is the one byte range peers write through the background
// plane: heartbeats (read there, pushed into the detector's inbox) and
// permission words. The verbs fabric confines that plane to it, so the log
// and its header are writable only through the replication plane.
func backgroundWords(l consensus.Layout) (offset, length uint64) {
	lo := min(l.HeartbeatOffset, l.PermissionOffset, l.DetectorScratch)
	hi := max(l.HeartbeatOffset+l.HeartbeatBytes, l.PermissionOffset+l.PermissionBytes, l.DetectorScratch+l.DetectorScratchN)
	return lo, hi - lo
}
