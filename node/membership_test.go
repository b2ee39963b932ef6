package node

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
)

// TestReplaceVoterWhileProposing replaces voter 1 with the learner 4
// while proposers keep writing: every acknowledged proposal is applied on
// every voter of the new configuration.
func TestReplaceVoterWhileProposing(t *testing.T) {
	c := startCluster(t, 4, func(cfg *Config) { cfg.Consensus.Voters = []rdma.NodeID{1, 2, 3} })
	c.leader(t)
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []consensus.Index
	)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				for _, id := range c.ids {
					nd := c.nodes[id]
					if !nd.IsLeader() {
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					idx, _, err := nd.Propose(ctx, []byte{byte(w), byte(i)}, nil)
					cancel()
					if err == nil {
						mu.Lock()
						acked = append(acked, idx)
						mu.Unlock()
					}
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	change := func(id rdma.NodeID, add bool) {
		t.Helper()
		for attempt := 0; ; attempt++ {
			l := c.leader(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			var err error
			if add {
				err = l.AddVoter(ctx, id)
			} else {
				err = l.RemoveVoter(ctx, id)
			}
			cancel()
			if err == nil {
				return
			}
			// A leader change under the change: it may be in force.
			if slices.Contains(c.leader(t).Voters(), id) == add {
				return
			}
			if attempt > 5 || !errors.Is(err, consensus.ErrLeadershipLost) && !errors.Is(err, consensus.ErrNotLeader) {
				t.Fatalf("change %d (add %v): %v", id, add, err)
			}
		}
	}
	change(4, true)
	change(1, false)
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	l := c.leader(t)
	if got := l.Voters(); !slices.Equal(got, []rdma.NodeID{2, 3, 4}) {
		t.Fatalf("voters %v, want [2 3 4]", got)
	}
	if len(acked) == 0 {
		t.Fatal("nothing acknowledged")
	}
	top := slices.Max(acked)
	for _, id := range []rdma.NodeID{2, 3, 4} {
		nd := c.nodes[id]
		deadline := time.Now().Add(10 * time.Second)
		for nd.Status().Applied < top && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if a := nd.Status().Applied; a < top {
			t.Fatalf("node %d applied %d, below acknowledged %d", id, a, top)
		}
	}
	if st := c.nodes[4].Status(); !slices.Equal(st.Voters, []rdma.NodeID{2, 3, 4}) {
		t.Fatalf("node 4 status voters %v", st.Voters)
	}
}
