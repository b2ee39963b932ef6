package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

// resultSM answers each command (an 8-byte op) with the op and the index
// it was applied at; it counts the commands it applied without a waiter.
type resultSM struct{ seqSM }

func (s *resultSM) ApplyResult(index Index, cmd []byte, out []byte) []byte {
	s.Apply(index, cmd)
	out = binary.LittleEndian.AppendUint64(out, binary.LittleEndian.Uint64(cmd))
	return binary.LittleEndian.AppendUint64(out, uint64(index))
}

// Concurrent proposers batch into shared slots; each gets the result of
// its own command, computed at the index it was committed at. A proposal
// that returns an error gets no result.
func TestProposeResult(t *testing.T) {
	c := newLiveClusterSM(t, context.Background(), func() (StateMachine, *seqSM) {
		s := &resultSM{}
		return s, &s.seqSM
	})
	l := c.leader(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := uint64(0); g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]byte, 0, 16)
			for i := uint64(0); i < 50; i++ {
				v := g<<32 | i
				at := l
				idx, res, err := at.ProposeResult(ctx, op(v), out)
				if err != nil {
					if res != nil {
						t.Errorf("error %v came with a result", err)
					}
					if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrLeadershipLost) {
						return // leadership moved on a loaded host: the rest is checked above
					}
					t.Errorf("propose %d: %v", v, err)
					return
				}
				if len(res) != 16 || binary.LittleEndian.Uint64(res) != v || Index(binary.LittleEndian.Uint64(res[8:])) != idx {
					t.Errorf("op %d at index %d: result %x", v, idx, res)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Across a leader change every successful proposal still carries its own
// result, and a proposal that fails carries none.
func TestProposeResultAcrossLeaderChange(t *testing.T) {
	c := newLiveClusterSM(t, context.Background(), func() (StateMachine, *seqSM) {
		s := &resultSM{}
		return s, &s.seqSM
	})
	old := c.leader(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		wg           sync.WaitGroup
		mu           sync.Mutex
		byOld, byNew int
		closeOld     = make(chan struct{})
		closeOnce    sync.Once
	)
	// Each proposer runs until it has 20 results from a leader other than
	// the old one (proposals that fail are not counted: electing the new
	// leader takes real time on a loaded host).
	for g := uint64(0); g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Leadership may move on its own first: never leave the
			// closer waiting.
			defer closeOnce.Do(func() { close(closeOld) })
			out := make([]byte, 0, 16)
			mine := 0
			for i := uint64(0); mine < 20; i++ {
				if ctx.Err() != nil {
					t.Errorf("proposer %d: %d results from the new leader before the deadline", g, mine)
					return
				}
				if i == 40 {
					closeOnce.Do(func() { close(closeOld) })
				}
				var at *Replica
				for _, r := range c.reps {
					if r.IsLeader() {
						at = r
					}
				}
				if at == nil {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				v := g<<32 | i
				idx, res, err := at.ProposeResult(ctx, op(v), out)
				if err != nil {
					if res != nil {
						t.Errorf("error %v came with a result", err)
					}
					if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) && !errors.Is(err, ErrClosed) {
						t.Errorf("propose %d: %v", v, err)
						return
					}
					continue
				}
				if len(res) != 16 || binary.LittleEndian.Uint64(res) != v || Index(binary.LittleEndian.Uint64(res[8:])) != idx {
					t.Errorf("op %d at index %d: result %x", v, idx, res)
					return
				}
				mu.Lock()
				if at == old {
					byOld++
				} else {
					byNew++
					mine++
				}
				mu.Unlock()
			}
		}()
	}
	<-closeOld
	old.Close()
	wg.Wait()
	t.Logf("results: %d from the old leader, %d from the new", byOld, byNew)
}

// kvResults is the test key-value machine in its result form: the result
// of a command is its op id; it counts the commands applied one by one.
type kvResults struct {
	kv    *kvSM
	calls int
}

func (k *kvResults) ApplyResult(index Index, cmd []byte, out []byte) []byte {
	k.calls++
	k.kv.Apply(index, cmd)
	return append(out, cmd[2:10]...)
}

// A follower restored from a snapshot produces no result for the commands
// the snapshot covers (it never applies them one by one); once it leads,
// its own proposals get their results.
func TestResultsAcrossSnapshotRestore(t *testing.T) {
	c := newCluster(t, 13, 3, nil)
	res := map[rdma.NodeID]*kvResults{}
	for _, id := range c.ids {
		res[id] = &kvResults{kv: c.sms[id]}
		c.reps[id].ra = res[id]
	}
	ldr := waitLeader(t, c, 20_000_000)
	lag := c.ids[2]
	if lag == ldr {
		lag = c.ids[1]
	}
	var others []rdma.NodeID
	for _, id := range c.ids {
		if id != lag {
			others = append(others, id)
		}
	}
	c.w.Partition([]rdma.NodeID{lag}, others)
	submitSlots(t, c, ldr, 0, 2*c.cfg.LogSlots+5)
	c.w.HealNetwork()
	if !c.w.RunUntil(func() bool { return converged(c, ldr, lag) }, c.w.Now()+50_000_000) {
		t.Fatalf("follower at %d, leader at %d", c.reps[lag].AppliedIndex(), c.reps[ldr].AppliedIndex())
	}
	if c.reps[lag].Stats().SnapshotsRestored == 0 {
		t.Fatal("follower converged without a snapshot")
	}
	if got, lead := res[lag].calls, res[ldr].calls; got >= lead || uint64(got) != c.sms[lag].applied {
		t.Fatalf("restored follower computed %d results (applied %d one by one), leader %d", got, c.sms[lag].applied, lead)
	}
	// The restored follower takes over (the third node is degraded, so
	// not preferred) and delivers results for its own proposals.
	for _, id := range c.ids {
		if id != ldr && id != lag {
			c.reps[id].SetDegraded(true)
		}
	}
	c.w.Crash(ldr, false)
	if !c.w.RunUntil(func() bool { l, ok := c.leader(); return ok && l != ldr }, c.w.Now()+50_000_000) {
		t.Fatal("no leader after the crash")
	}
	nl, _ := c.leader()
	if nl != lag {
		t.Fatalf("node %d leads, want the restored follower %d", nl, lag)
	}
	var buf [kvCmdBytes]byte
	cmd := encodeKV(buf[:], true, 3, 1<<40, 7)
	type outcome struct {
		res []byte
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		_, r, err := c.reps[nl].ProposeResult(context.Background(), cmd, nil)
		done <- outcome{r, err}
	}()
	var o outcome
	if !c.w.RunUntil(func() bool {
		select {
		case o = <-done:
			return true
		default:
			return false
		}
	}, c.w.Now()+50_000_000) {
		t.Fatal("proposal to the new leader not decided")
	}
	if o.err != nil || len(o.res) != 8 || binary.LittleEndian.Uint64(o.res) != 1<<40 {
		t.Fatalf("restored follower leading: result %x, %v", o.res, o.err)
	}
}
