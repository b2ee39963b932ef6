package consensus

import (
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/inproc"
)

type nopSM struct{ applied int }

func (s *nopSM) Apply(Index, []byte)         { s.applied++ }
func (s *nopSM) Snapshot() ([]byte, error)   { return nil, nil }
func (s *nopSM) Restore(Index, []byte) error { return nil }

// BenchmarkProposeCommit measures one proposal from Submit to commit and
// apply on the leader, on the in-process fabric with the three replicas
// stepped by the benchmark goroutine (no scheduler in the measurement).
// It must report 0 allocs/op.
func BenchmarkProposeCommit(b *testing.B) { benchProposeCommit(b, DurabilityMemory) }

// BenchmarkProposeCommitSync is BenchmarkProposeCommit in sync mode over
// a storage that is durable at once: the journal's own cost on the
// proposal path, which must also be 0 allocs/op.
func BenchmarkProposeCommitSync(b *testing.B) { benchProposeCommit(b, DurabilitySync) }

// instantStorage keeps nothing and reports every record durable at once.
type instantStorage struct{ n uint64 }

func (s *instantStorage) Load(func([]byte) error) error { return nil }
func (s *instantStorage) Reset() error                  { s.n = 0; return nil }
func (s *instantStorage) Append([]byte) (uint64, error) { s.n++; return s.n, nil }
func (s *instantStorage) Durable() (uint64, error)      { return s.n, nil }

func benchProposeCommit(b *testing.B, mode Durability) {
	members := []rdma.NodeID{1, 2, 3}
	cfg := DefaultConfig()
	cfg.Members = members
	cfg.Durability = mode
	cfg.NewCluster = true
	net, err := inproc.NewNetwork(inproc.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	var reps []*Replica
	for _, id := range members {
		f, err := net.AddNode(id, int(cfg.RegionBytes()))
		if err != nil {
			b.Fatal(err)
		}
		_ = f
	}
	if err := net.ConnectAll([rdma.NumPlanes]rdma.Access{rdma.AccessRemoteRead, rdma.AccessAll}); err != nil {
		b.Fatal(err)
	}
	for _, id := range members {
		if mode != DurabilityMemory {
			cfg.Storage = &instantStorage{}
		}
		r, err := New(net.Node(id), &nopSM{}, cfg)
		if err != nil {
			b.Fatal(err)
		}
		reps = append(reps, r)
	}
	stepAll := func() {
		for _, r := range reps {
			r.Step(r.f.Now())
		}
	}
	var leader *Replica
	for leader == nil {
		stepAll()
		for _, r := range reps {
			if r.IsLeader() {
				leader = r
			}
		}
	}
	done := 0
	leader.SetResultHandler(func(_ uint64, _ Index, err error) {
		if err != nil {
			b.Fatalf("proposal failed: %v", err)
		}
		done++
	})
	payload := make([]byte, 64)
	// Warm up past the first ring wrap so steady state is measured.
	for i := 0; i < 2*cfg.LogSlots; i++ {
		if err := leader.Submit(payload, 0); err != nil {
			b.Fatal(err)
		}
		for want := done + 1; done < want; {
			stepAll()
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := leader.Submit(payload, uint64(i)); err != nil {
			b.Fatal(err)
		}
		for want := done + 1; done < want; {
			stepAll()
		}
	}
}
