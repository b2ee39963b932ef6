package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

// kv is a tiny replicated state machine: commands are "key=value".
type kv struct {
	mu   sync.Mutex
	data map[string]string
}

func (s *kv) Apply(_ consensus.Index, cmd []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, v, _ := strings.Cut(string(cmd), "=")
	s.data[k] = v
}

func (s *kv) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for k, v := range s.data {
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return []byte(b.String()), nil
}

func (s *kv) Restore(_ consensus.Index, snap []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(snap)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			s.data[k] = v
		}
	}
	return nil
}

func (s *kv) get(k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data[k]
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
	sms := map[rdma.NodeID]*kv{}
	for _, id := range members {
		sms[id] = &kv{data: map[string]string{}}
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
	// After ErrLeadershipLost the outcome is unknown, so the command is
	// proposed again: "key=value" commands are idempotent.
	propose := func(cmd string) {
		at := members[0]
		for {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			_, err := replicas[at].Propose(pctx, []byte(cmd))
			pcancel()
			var nl *consensus.NotLeaderError
			switch {
			case err == nil:
				return
			case errors.As(err, &nl) && nl.Known:
				at = nl.Leader
			}
			time.Sleep(time.Millisecond) // election under way
		}
	}
	for _, cmd := range []string{"a=1", "b=2", "c=3"} {
		propose(cmd)
	}

	// Every replica applies the same commands in the same order.
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range members {
		for sms[id].get("c") == "" && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		fmt.Printf("replica %d: a=%s b=%s c=%s\n", id, sms[id].get("a"), sms[id].get("b"), sms[id].get("c"))
	}
	// Output:
	// replica 1: a=1 b=2 c=3
	// replica 2: a=1 b=2 c=3
	// replica 3: a=1 b=2 c=3
}
