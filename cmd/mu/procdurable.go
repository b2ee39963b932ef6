package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rdmaconsensus/mu/config"
	"github.com/rdmaconsensus/mu/rdma"
)

// dataDir is node id's data directory.
func (g *procGroup) dataDir(id rdma.NodeID) string {
	root := g.opts.dataRoot
	if root == "" {
		root = g.dir
	}
	return filepath.Join(root, fmt.Sprintf("node%d", id))
}

// durabilityConfig is the config lines of node id's durability: none for
// the default, and for a new cluster's first start.
func (g *procGroup) durabilityConfig(id rdma.NodeID) string {
	switch g.opts.durability {
	case "":
		return ""
	case "memory":
		// Nothing on disk: a restart has nothing to vote with.
		return "durability: memory\ninitial_cluster_state: new\n"
	}
	return fmt.Sprintf("durability: %s\ndata_dir: %s\ninitial_cluster_state: %s\n",
		g.opts.durability, g.dataDir(id), config.ClusterStateNew)
}

// killAll SIGKILLs every running node at once (all signals first, then
// the waits: no node outlives another by a wait) and waits for them to
// be gone.
func (g *procGroup) killAll() error {
	g.mu.Lock()
	var errs []error
	var waits []chan struct{}
	for _, id := range g.ids {
		p := g.procs[id]
		if p == nil || p.Process == nil {
			continue
		}
		if err := p.Process.Signal(syscall.SIGKILL); err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", id, err))
		}
		waits = append(waits, g.exited[id])
		g.procs[id] = nil
	}
	g.mu.Unlock()
	for _, w := range waits {
		<-w
	}
	for _, id := range g.ids {
		g.clients[id].close()
	}
	return errors.Join(errs...)
}

// restartFromDisk starts every node again as a member of an existing
// cluster (initial_cluster_state: existing, --rejoin auto), as an operator
// restarts them: with async or sync durability each node's journal says
// whether it votes, with memory each comes back empty and rejoins.
func (g *procGroup) restartFromDisk() error {
	old := []byte("initial_cluster_state: " + config.ClusterStateNew + "\n")
	for _, id := range g.ids {
		path := g.cfgPath[id]
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		b = bytes.ReplaceAll(b, old, []byte("initial_cluster_state: "+config.ClusterStateExisting+"\n"))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	for _, id := range g.ids {
		if err := g.startWith(id, "auto"); err != nil {
			return err
		}
	}
	return nil
}
