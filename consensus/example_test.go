package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// counter is a tiny replicated state machine: it sums the bytes it applies.
type counter struct {
	mu    sync.Mutex
	total int
	count int
}

func (c *counter) Apply(_ consensus.Index, cmd []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range cmd {
		c.total += int(b)
	}
	c.count++
}

func (c *counter) Snapshot() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return []byte{byte(c.total), byte(c.count)}, nil
}

func (c *counter) Restore(_ consensus.Index, s []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total, c.count = int(s[0]), int(s[1])
	return nil
}

func (c *counter) read() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, c.count
}

// Example replicates three commands through three replicas in one process,
// over the in-process fabric.
func Example() {
	members := []rdma.NodeID{1, 2, 3}
	cfg := consensus.DefaultConfig()
	cfg.Members = members

	net, err := inproc.NewNetwork(inproc.DefaultConfig())
	if err != nil {
		panic(err)
	}
	defer net.Close()
	fabrics := map[rdma.NodeID]*inproc.Fabric{}
	for _, id := range members {
		if fabrics[id], err = net.AddNode(id, int(cfg.RegionBytes())); err != nil {
			panic(err)
		}
	}
	// No leader yet: peers may read each other's logs but not write them.
	if err := net.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll}); err != nil {
		panic(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	replicas := map[rdma.NodeID]*consensus.Replica{}
	sms := map[rdma.NodeID]*counter{}
	for _, id := range members {
		sms[id] = &counter{}
		r, err := consensus.New(fabrics[id], sms[id], cfg)
		if err != nil {
			panic(err)
		}
		replicas[id] = r
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx, consensus.DriveSpinYield) }()
	}
	defer func() { cancel(); wg.Wait() }()

	// Propose to any replica; a follower answers with the leader's id.
	propose := func(cmd []byte) consensus.Index {
		at := members[0]
		for {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			idx, err := replicas[at].Propose(pctx, cmd)
			pcancel()
			var nl *consensus.NotLeaderError
			switch {
			case err == nil:
				return idx
			case errors.As(err, &nl) && nl.Known:
				at = nl.Leader
			}
			time.Sleep(time.Millisecond) // election under way
		}
	}
	for _, cmd := range [][]byte{{1}, {2}, {3, 4}} {
		propose(cmd)
	}

	// Every replica applies the same commands in the same order.
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range members {
		for {
			if total, count := sms[id].read(); count == 3 || time.Now().After(deadline) {
				fmt.Printf("replica %d: %d commands, total %d\n", id, count, total)
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Output:
	// replica 1: 3 commands, total 10
	// replica 2: 3 commands, total 10
	// replica 3: 3 commands, total 10
}
