package orderbook

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"
)

// testSeed returns MU_SEED if set, else a fresh seed; it logs the seed so a
// failure can be replayed with MU_SEED=<seed> go test -run <name>.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MU_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MU_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay: MU_SEED=%d go test -run '%s' ./examples/orderbook)", seed, seed, t.Name())
	return seed
}

// applyRecord applies cmd to e and appends to out an encoding of what it did: the
// rejection kind, or the result summary and every trade.
func applyRecord(t *testing.T, e *Engine, cmd []byte, out []byte) []byte {
	t.Helper()
	r, err := e.Apply(cmd)
	switch {
	case err == nil:
		out = append(out, 'A')
	case errors.Is(err, ErrDuplicate):
		return append(out, 'D')
	case errors.Is(err, ErrUnknownOrder):
		return append(out, 'U')
	default:
		t.Fatalf("generated command %x rejected: %v", cmd, err)
	}
	c := Command{Op: r.Op, Client: r.Ref.Client, Seq: r.Ref.Seq, QtyLots: r.RestingLots, OrigSeq: r.FilledLots, PriceTicks: int64(r.CanceledLots)}
	out = c.Append(out)
	for i := range r.Trades {
		out = r.Trades[i].Append(out)
	}
	return out
}

func TestDeterminism(t *testing.T) {
	seed := testSeed(t)
	g := NewLoadGen(seed, LoadGenConfig{})
	a, b := New(Config{}), New(Config{OrderCapacity: 8, LevelCapacity: 2}) // different pool sizes, same behaviour
	var outA, outB, cmd []byte
	for i := 0; i < 20000; i++ {
		cmd = g.Next(cmd[:0])
		outA = applyRecord(t, a, cmd, outA)
		outB = applyRecord(t, b, cmd, outB)
	}
	if !bytes.Equal(outA, outB) {
		t.Fatalf("engines fed the same commands diverged (%d vs %d output bytes)", len(outA), len(outB))
	}
	if a.TradeCount() == 0 || a.RestingOrders() == 0 {
		t.Fatalf("stream exercised too little: %d trades, %d resting", a.TradeCount(), a.RestingOrders())
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Fatal("snapshots of engines in the same state differ")
	}
	// The generator is deterministic too.
	g1, g2 := NewLoadGen(seed, LoadGenConfig{}), NewLoadGen(seed, LoadGenConfig{})
	for i := 0; i < 1000; i++ {
		if x, y := g1.Next(nil), g2.Next(nil); !bytes.Equal(x, y) {
			t.Fatalf("generator diverged at command %d", i)
		}
	}
}

func TestSnapshotRestoreContinues(t *testing.T) {
	seed := testSeed(t)
	g := NewLoadGen(seed, LoadGenConfig{})
	a := New(Config{})
	var cmd, sink []byte
	for i := 0; i < 15000; i++ {
		cmd = g.Next(cmd[:0])
		sink = applyRecord(t, a, cmd, sink[:0])
	}
	snap := snapshotBytes(t, a)
	b := New(Config{})
	// Restore must replace state, not merge into it.
	b.Apply(AppendLimit(nil, 999, 1, Buy, GoodTillCancel, 1, 1))
	if err := b.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, snapshotBytes(t, b)) {
		t.Fatal("restored engine snapshots differently")
	}
	if b.RestingOrders() != a.RestingOrders() || b.TradeCount() != a.TradeCount() || b.AppliedCommands() != a.AppliedCommands() {
		t.Fatalf("restored counters differ")
	}
	wantDepth(t, b.Depth(Buy, 1000, nil), a.Depth(Buy, 1000, nil)...)
	wantDepth(t, b.Depth(Sell, 1000, nil), a.Depth(Sell, 1000, nil)...)
	var outA, outB []byte
	for i := 0; i < 15000; i++ {
		cmd = g.Next(cmd[:0])
		outA = applyRecord(t, a, cmd, outA)
		outB = applyRecord(t, b, cmd, outB)
	}
	if !bytes.Equal(outA, outB) {
		t.Fatal("original and restored engines diverged after the snapshot")
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Fatal("final states differ")
	}
}

func TestRestoreRejectsDamage(t *testing.T) {
	g := NewLoadGen(1, LoadGenConfig{})
	a := New(Config{})
	var cmd []byte
	for i := 0; i < 2000; i++ {
		cmd = g.Next(cmd[:0])
		a.Apply(cmd)
	}
	snap := snapshotBytes(t, a)
	victim := New(Config{})
	victim.Apply(AppendLimit(nil, 1, 1, Buy, GoodTillCancel, 50, 5))
	keep := snapshotBytes(t, victim)
	for _, off := range []int{0, 5, 10, 30, len(snap) / 2, len(snap) - 1} {
		bad := bytes.Clone(snap)
		bad[off] ^= 0x40
		if err := victim.Restore(bytes.NewReader(bad)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("flip at %d: %v, want ErrBadSnapshot", off, err)
		}
	}
	for _, n := range []int{0, 10, len(snap) - 1} {
		if err := victim.Restore(bytes.NewReader(snap[:n])); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("truncated to %d: %v, want ErrBadSnapshot", n, err)
		}
	}
	if !bytes.Equal(keep, snapshotBytes(t, victim)) {
		t.Fatal("a failed restore changed the engine")
	}
}
