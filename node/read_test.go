package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
)

// ReadIndex on the leader covers what it acknowledged; a follower names
// the leader; after Close it fails with ErrClosed.
func TestReadIndex(t *testing.T) {
	c := startCluster(t, 3)
	for attempt := 0; ; attempt++ {
		l := c.leader(t)
		idx, _, err := l.Propose(context.Background(), []byte("order 1"), nil)
		if err == nil {
			var ri consensus.Index
			ri, err = l.ReadIndex(context.Background())
			if err == nil && (ri < idx || l.AppliedIndex() < ri) {
				t.Fatalf("ReadIndex %d after a commit at %d with %d applied", ri, idx, l.AppliedIndex())
			}
		}
		if errors.Is(err, consensus.ErrNotLeader) && attempt < 10 {
			continue // leadership moved on a loaded host
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range c.ids {
			if f := c.nodes[id]; f != l {
				var nl *consensus.NotLeaderError
				if err := f.Read(context.Background(), func() { t.Error("Read ran fn on a follower") }); !errors.As(err, &nl) {
					t.Errorf("Read on a follower: %v, want a NotLeaderError", err)
				}
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.ReadIndex(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("ReadIndex after Close: %v, want ErrClosed", err)
		}
		return
	}
}

// TransferLeadership moves leadership to the chosen follower and returns
// once it leads; a follower asked to transfer names the leader.
func TestTransferLeadership(t *testing.T) {
	c := startCluster(t, 3)
	for attempt := 0; ; attempt++ {
		l := c.leader(t)
		var to *Node
		moved := false
		for _, id := range c.ids {
			if f := c.nodes[id]; f != l {
				to = f
				var nl *consensus.NotLeaderError
				err := f.TransferLeadership(context.Background(), l.ID())
				if err == nil && attempt < 10 {
					// f led by then (leadership moved on a loaded host,
					// at boot), and handed it back to l.
					moved = true
					continue
				}
				if !errors.As(err, &nl) {
					t.Fatalf("transfer from a follower: %v, want a NotLeaderError", err)
				}
			}
		}
		if moved {
			continue
		}
		err := l.TransferLeadership(context.Background(), to.ID())
		if (errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrLeadershipLost)) && attempt < 10 {
			// Leadership moved on a loaded host: before the request, or a
			// third member contested the target's election.
			continue
		}
		if err != nil {
			t.Fatalf("transfer %d -> %d: %v", l.ID(), to.ID(), err)
		}
		// It returned once to led; to's counters are published at the
		// end of its Step.
		for deadline := time.Now().Add(time.Second); to.Stats().LeaderTerms == 0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Microsecond)
		}
		if to.Stats().LeaderTerms == 0 {
			t.Fatalf("the transfer to %d returned but it never led", to.ID())
		}
		c.leader(t) // some node commits again
		return
	}
}
