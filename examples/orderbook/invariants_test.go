package orderbook

import (
	"bytes"
	"fmt"
	"testing"
)

// checkInvariants verifies the engine's internal structure: sorted ladders,
// consistent FIFO links, level totals, the ref index and an uncrossed book.
func checkInvariants(e *Engine) error {
	seen := 0
	for s := Buy; s <= Sell; s++ {
		ladder := e.sides[s-1].ladder
		for i, lr := range ladder {
			if i > 0 && ladder[i-1].key >= lr.key {
				return fmt.Errorf("%s ladder not strictly ascending at %d", s, i)
			}
			lv := &e.levels[lr.level]
			if sideKey(s, lv.priceTicks) != lr.key {
				return fmt.Errorf("%s level %d price %d does not match key %d", s, lr.level, lv.priceTicks, lr.key)
			}
			var count int32
			var total uint64
			prev := int32(nilIndex)
			for oi := lv.head; oi != nilIndex; oi = e.orders[oi].next {
				o := &e.orders[oi]
				if o.prev != prev || o.level != lr.level || o.side != s || o.priceTicks != lv.priceTicks || o.openLots == 0 {
					return fmt.Errorf("order %d (%+v) inconsistent with its level %d", oi, *o, lr.level)
				}
				if got, ok := e.byRef[o.ref]; !ok || got != oi {
					return fmt.Errorf("order %d ref %+v not indexed", oi, o.ref)
				}
				if o.ref.Seq > e.lastSeq[o.ref.Client] {
					return fmt.Errorf("order %d ref %+v beyond its client's last seq", oi, o.ref)
				}
				count++
				total += uint64(o.openLots)
				prev = oi
			}
			if prev != lv.tail || count != lv.count || total != lv.totalLots || count == 0 {
				return fmt.Errorf("%s level at %d: tail %d/%d count %d/%d total %d/%d", s, lv.priceTicks, prev, lv.tail, count, lv.count, total, lv.totalLots)
			}
			seen += int(count)
		}
	}
	if seen != len(e.byRef) {
		return fmt.Errorf("%d orders on the ladders, %d indexed", seen, len(e.byRef))
	}
	bid, okB := e.Best(Buy)
	ask, okA := e.Best(Sell)
	if okB && okA && bid.PriceTicks >= ask.PriceTicks {
		return fmt.Errorf("crossed book: bid %d ask %d", bid.PriceTicks, ask.PriceTicks)
	}
	return nil
}

func TestInvariantsUnderLoad(t *testing.T) {
	seed := testSeed(t)
	cfg := LoadGenConfig{Clients: 4, MaxOpenPerClient: 16, MaxQtyLots: 20, ReplacePct: 25, AggressivePct: 30, DuplicatePct: 2}
	g := NewLoadGen(seed, cfg)
	e := New(Config{OrderCapacity: 1, LevelCapacity: 1})
	var cmd []byte
	for i := 0; i < 20000; i++ {
		cmd = g.Next(cmd[:0])
		e.Apply(cmd)
		if i%97 == 0 {
			if err := checkInvariants(e); err != nil {
				t.Fatalf("after command %d (%x): %v", i, cmd, err)
			}
		}
	}
	if err := checkInvariants(e); err != nil {
		t.Fatal(err)
	}
}

// FuzzApply applies one arbitrary command to a populated book: it is either
// rejected with the engine unchanged, or applied with the structure intact.
func FuzzApply(f *testing.F) {
	f.Add(AppendLimit(nil, 1, 100, Buy, GoodTillCancel, 10_002, 50))
	f.Add(AppendLimit(nil, 2, 100, Sell, ImmediateOrCancel, 9_990, 500))
	f.Add(AppendMarket(nil, 3, 100, Buy, 70))
	f.Add(AppendCancel(nil, 1, 100, 5))
	f.Add(AppendReplace(nil, 2, 100, 7, 9_999, 40))
	f.Add([]byte{byte(OpLimit), 0, 0})
	f.Fuzz(func(t *testing.T, cmd []byte) {
		e := New(Config{})
		g := NewLoadGen(3, LoadGenConfig{Clients: 3})
		var c []byte
		for i := 0; i < 300; i++ {
			c = g.Next(c[:0])
			e.Apply(c)
		}
		var before bytes.Buffer
		e.Snapshot(&before)
		_, err := e.Apply(cmd)
		if err != nil {
			var after bytes.Buffer
			e.Snapshot(&after)
			if !bytes.Equal(before.Bytes(), after.Bytes()) {
				t.Fatalf("rejected command %x (%v) changed the engine", cmd, err)
			}
		} else {
			var d Command
			if Decode(cmd, &d) != nil || !bytes.Equal(d.Append(nil), cmd) {
				t.Fatalf("applied command %x does not round-trip", cmd)
			}
		}
		if err := checkInvariants(e); err != nil {
			t.Fatalf("after %x: %v", cmd, err)
		}
	})
}
