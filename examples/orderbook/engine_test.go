package orderbook

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// book wraps an engine with per-client sequence numbering for readable tests.
type book struct {
	t   *testing.T
	e   *Engine
	seq map[uint64]uint64
}

func newBook(t *testing.T) *book {
	return &book{t: t, e: New(Config{}), seq: map[uint64]uint64{}}
}

func (b *book) next(client uint64) uint64 { b.seq[client]++; return b.seq[client] }

func (b *book) must(cmd []byte) Result {
	b.t.Helper()
	r, err := b.e.Apply(cmd)
	if err != nil {
		b.t.Fatalf("apply %x: %v", cmd, err)
	}
	// Copy trades: the engine reuses its buffer.
	r.Trades = slices.Clone(r.Trades)
	return r
}

func (b *book) limit(client uint64, s Side, priceTicks int64, qtyLots uint32) (OrderRef, Result) {
	b.t.Helper()
	seq := b.next(client)
	return OrderRef{client, seq}, b.must(AppendLimit(nil, client, seq, s, GoodTillCancel, priceTicks, qtyLots))
}

func (b *book) ioc(client uint64, s Side, priceTicks int64, qtyLots uint32) Result {
	b.t.Helper()
	seq := b.next(client)
	return b.must(AppendLimit(nil, client, seq, s, ImmediateOrCancel, priceTicks, qtyLots))
}

func (b *book) market(client uint64, s Side, qtyLots uint32) Result {
	b.t.Helper()
	return b.must(AppendMarket(nil, client, b.next(client), s, qtyLots))
}

func (b *book) cancel(ref OrderRef) Result {
	b.t.Helper()
	return b.must(AppendCancel(nil, ref.Client, b.next(ref.Client), ref.Seq))
}

func (b *book) replace(ref OrderRef, priceTicks int64, qtyLots uint32) Result {
	b.t.Helper()
	return b.must(AppendReplace(nil, ref.Client, b.next(ref.Client), ref.Seq, priceTicks, qtyLots))
}

func (b *book) depth(s Side) []Level { return b.e.Depth(s, 100, nil) }

type fill struct {
	maker      OrderRef
	priceTicks int64
	qtyLots    uint32
}

func fills(r Result) []fill {
	var f []fill
	for _, t := range r.Trades {
		f = append(f, fill{t.Maker, t.PriceTicks, t.QtyLots})
	}
	return f
}

func wantFills(t *testing.T, r Result, want ...fill) {
	t.Helper()
	if got := fills(r); !slices.Equal(got, want) {
		t.Fatalf("fills = %+v, want %+v", got, want)
	}
}

func wantDepth(t *testing.T, got []Level, want ...Level) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("depth = %+v, want %+v", got, want)
	}
}

func TestPricePriorityThenTimePriority(t *testing.T) {
	b := newBook(t)
	a1, _ := b.limit(1, Sell, 101, 5)
	a2, _ := b.limit(2, Sell, 100, 5) // better price, later
	a3, _ := b.limit(3, Sell, 100, 5) // same price, later still
	r := b.limit2(4, Buy, 101, 12)
	wantFills(t, r, fill{a2, 100, 5}, fill{a3, 100, 5}, fill{a1, 101, 2})
	if r.FilledLots != 12 || r.RestingLots != 0 {
		t.Fatalf("filled %d resting %d, want 12 0", r.FilledLots, r.RestingLots)
	}
	wantDepth(t, b.depth(Sell), Level{101, 3, 1})
	if info, ok := b.e.Order(a1); !ok || info.OpenLots != 3 {
		t.Fatalf("maker a1 = %+v %v, want 3 lots open", info, ok)
	}
}

// limit2 is limit without the ref, for takers.
func (b *book) limit2(client uint64, s Side, priceTicks int64, qtyLots uint32) Result {
	b.t.Helper()
	_, r := b.limit(client, s, priceTicks, qtyLots)
	return r
}

func TestTradeAtMakerPriceAndRestRemainder(t *testing.T) {
	b := newBook(t)
	bid, _ := b.limit(1, Buy, 105, 4)
	ref, r := b.limit(2, Sell, 100, 10)
	wantFills(t, r, fill{bid, 105, 4})
	if r.FilledLots != 4 || r.RestingLots != 6 {
		t.Fatalf("filled %d resting %d, want 4 6", r.FilledLots, r.RestingLots)
	}
	if r.Trades[0].TakerSide != Sell || r.Trades[0].Taker != ref || r.Trades[0].MakerLeftLots != 0 {
		t.Fatalf("trade = %+v", r.Trades[0])
	}
	wantDepth(t, b.depth(Buy))
	wantDepth(t, b.depth(Sell), Level{100, 6, 1})
}

func TestNoTradeWhenNotCrossing(t *testing.T) {
	b := newBook(t)
	b.limit(1, Buy, 99, 5)
	b.limit(1, Buy, 98, 5)
	b.limit(1, Buy, 99, 2)
	r := b.limit2(2, Sell, 100, 5)
	wantFills(t, r)
	wantDepth(t, b.depth(Buy), Level{99, 7, 2}, Level{98, 5, 1})
	wantDepth(t, b.depth(Sell), Level{100, 5, 1})
	if lv, ok := b.e.Best(Buy); !ok || lv.PriceTicks != 99 {
		t.Fatalf("best bid = %+v %v", lv, ok)
	}
}

func TestMarketOrderSweepsAndCancelsRest(t *testing.T) {
	b := newBook(t)
	x, _ := b.limit(1, Sell, 100, 3)
	y, _ := b.limit(1, Sell, 110, 3)
	r := b.market(2, Buy, 10)
	wantFills(t, r, fill{x, 100, 3}, fill{y, 110, 3})
	if r.FilledLots != 6 || r.CanceledLots != 4 || r.RestingLots != 0 {
		t.Fatalf("result %+v", r)
	}
	wantDepth(t, b.depth(Sell))
	wantDepth(t, b.depth(Buy))
	// A market order into an empty side is accepted and fills nothing.
	r = b.market(2, Sell, 5)
	if r.FilledLots != 0 || r.CanceledLots != 5 {
		t.Fatalf("result %+v", r)
	}
}

func TestImmediateOrCancel(t *testing.T) {
	b := newBook(t)
	x, _ := b.limit(1, Buy, 100, 3)
	b.limit(1, Buy, 99, 3)
	r := b.ioc(2, Sell, 100, 5)
	wantFills(t, r, fill{x, 100, 3})
	if r.CanceledLots != 2 || r.RestingLots != 0 {
		t.Fatalf("result %+v", r)
	}
	wantDepth(t, b.depth(Sell))
	wantDepth(t, b.depth(Buy), Level{99, 3, 1})
}

func TestCancel(t *testing.T) {
	b := newBook(t)
	x, _ := b.limit(1, Buy, 100, 3)
	y, _ := b.limit(2, Buy, 100, 4)
	r := b.cancel(x)
	if r.CanceledLots != 3 || r.Ref != x {
		t.Fatalf("result %+v", r)
	}
	wantDepth(t, b.depth(Buy), Level{100, 4, 1})
	b.cancel(y)
	wantDepth(t, b.depth(Buy))
	if b.e.RestingOrders() != 0 {
		t.Fatalf("resting %d", b.e.RestingOrders())
	}
	// Cancelling again is rejected and changes nothing, not even the seq table.
	before := b.e.LastSeq(1)
	if _, err := b.e.Apply(AppendCancel(nil, 1, before+1, x.Seq)); !errors.Is(err, ErrUnknownOrder) {
		t.Fatalf("second cancel: %v, want ErrUnknownOrder", err)
	}
	if b.e.LastSeq(1) != before {
		t.Fatalf("rejected cancel moved the sequence table")
	}
	// Another client cannot name client 2's order: refs are per client.
	if _, err := b.e.Apply(AppendCancel(nil, 3, 5, y.Seq)); !errors.Is(err, ErrUnknownOrder) {
		t.Fatalf("foreign cancel: %v", err)
	}
}

func TestReplaceKeepsPriorityOnlyWhenShrinkingAtSamePrice(t *testing.T) {
	b := newBook(t)
	x, _ := b.limit(1, Sell, 100, 10)
	y, _ := b.limit(2, Sell, 100, 10)
	r := b.replace(x, 100, 4) // shrink: keeps its place ahead of y
	if r.CanceledLots != 6 || r.RestingLots != 4 {
		t.Fatalf("shrink result %+v", r)
	}
	wantDepth(t, b.depth(Sell), Level{100, 14, 2})
	wantFills(t, b.market(3, Buy, 4), fill{x, 100, 4})

	b2 := newBook(t)
	x, _ = b2.limit(1, Sell, 100, 10)
	y, _ = b2.limit(2, Sell, 100, 10)
	b2.replace(x, 100, 11) // grow: goes behind y
	wantFills(t, b2.market(3, Buy, 12), fill{y, 100, 10}, fill{x, 100, 2})

	b3 := newBook(t)
	x, _ = b3.limit(1, Sell, 101, 10)
	y, _ = b3.limit(2, Sell, 100, 10)
	b3.replace(x, 100, 10) // price change: behind y at the new price
	wantDepth(t, b3.depth(Sell), Level{100, 20, 2})
	wantFills(t, b3.market(3, Buy, 15), fill{y, 100, 10}, fill{x, 100, 5})
	// The order keeps its name through a replace.
	if info, ok := b3.e.Order(x); !ok || info.OpenLots != 5 || info.PriceTicks != 100 {
		t.Fatalf("after replace x = %+v %v", info, ok)
	}
}

func TestReplaceThatCrossesTrades(t *testing.T) {
	b := newBook(t)
	bid, _ := b.limit(1, Buy, 99, 5)
	ask, _ := b.limit(2, Sell, 102, 8)
	r := b.replace(ask, 99, 8)
	wantFills(t, r, fill{bid, 99, 5})
	if r.Trades[0].Taker != ask || r.FilledLots != 5 || r.RestingLots != 3 {
		t.Fatalf("result %+v", r)
	}
	wantDepth(t, b.depth(Sell), Level{99, 3, 1})
	// Fully filled by a replace: the order is gone.
	bid2, _ := b.limit(3, Buy, 98, 3)
	r = b.replace(ask, 98, 3)
	wantFills(t, r, fill{bid2, 98, 3})
	if _, ok := b.e.Order(ask); ok || b.e.RestingOrders() != 0 {
		t.Fatalf("filled order still resting")
	}
}

func TestDuplicateIsRejectedWithoutEffect(t *testing.T) {
	b := newBook(t)
	cmd := AppendLimit(nil, 7, 1, Buy, GoodTillCancel, 100, 5)
	b.must(cmd)
	snap := snapshotBytes(t, b.e)
	if _, err := b.e.Apply(cmd); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("retry: %v, want ErrDuplicate", err)
	}
	// A lower sequence number than the last applied one is also a duplicate.
	b.must(AppendLimit(nil, 7, 5, Buy, GoodTillCancel, 100, 5))
	snap = snapshotBytes(t, b.e)
	if _, err := b.e.Apply(AppendMarket(nil, 7, 3, Sell, 1)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("old seq: %v, want ErrDuplicate", err)
	}
	if !bytes.Equal(snap, snapshotBytes(t, b.e)) {
		t.Fatal("duplicate changed the engine")
	}
	// Gaps are fine: sequence numbers must rise, not be dense.
	b.must(AppendMarket(nil, 7, 9, Sell, 1))
}

func TestMalformedCommandsAreRejectedWithoutEffect(t *testing.T) {
	b := newBook(t)
	b.limit(1, Buy, 100, 5)
	b.limit(2, Sell, 101, 5)
	before := snapshotBytes(t, b.e)
	good := AppendLimit(nil, 3, 1, Buy, GoodTillCancel, 101, 5)
	bad := map[string][]byte{
		"empty":        nil,
		"short header": good[:10],
		"truncated":    good[:len(good)-1],
		"trailing":     append(slices.Clone(good), 0),
		"unknown op":   append([]byte{99}, good[1:]...),
		"op zero":      append([]byte{0}, good[1:]...),
		"client 0":     AppendLimit(nil, 0, 1, Buy, GoodTillCancel, 101, 5),
		"seq 0":        AppendLimit(nil, 3, 0, Buy, GoodTillCancel, 101, 5),
		"side 0":       AppendLimit(nil, 3, 1, 0, GoodTillCancel, 101, 5),
		"side 3":       AppendMarket(nil, 3, 1, 3, 5),
		"tif 2":        AppendLimit(nil, 3, 1, Buy, 2, 101, 5),
		"price 0":      AppendLimit(nil, 3, 1, Buy, GoodTillCancel, 0, 5),
		"price < 0":    AppendLimit(nil, 3, 1, Buy, GoodTillCancel, -101, 5),
		"qty 0":        AppendLimit(nil, 3, 1, Buy, GoodTillCancel, 101, 0),
		"market qty 0": AppendMarket(nil, 3, 1, Buy, 0),
		"cancel self":  AppendCancel(nil, 3, 4, 4),
		"cancel later": AppendCancel(nil, 3, 4, 9),
		"replace 0":    AppendReplace(nil, 1, 2, 1, 100, 0),
		"replace px 0": AppendReplace(nil, 1, 2, 1, 0, 5),
	}
	for name, cmd := range bad {
		_, err := b.e.Apply(cmd)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := b.e.Apply(append([]byte{99}, good[1:]...)); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("unknown op: %v, want ErrUnknownCommand", err)
	}
	if !bytes.Equal(before, snapshotBytes(t, b.e)) {
		t.Fatal("a rejected command changed the engine")
	}
	// The well-formed version of the same command still applies.
	wantFills(t, b.must(good), fill{OrderRef{2, 1}, 101, 5})
}

func TestDecodeRoundTrip(t *testing.T) {
	cmds := []Command{
		{Op: OpLimit, Client: 1, Seq: 2, Side: Sell, TIF: ImmediateOrCancel, PriceTicks: 1 << 40, QtyLots: 1<<32 - 1},
		{Op: OpMarket, Client: 1<<64 - 1, Seq: 3, Side: Buy, QtyLots: 7},
		{Op: OpCancel, Client: 5, Seq: 9, OrigSeq: 8},
		{Op: OpReplace, Client: 5, Seq: 10, OrigSeq: 1, PriceTicks: 3, QtyLots: 4},
	}
	lens := []int{LimitLen, MarketLen, CancelLen, ReplaceLen}
	for i, c := range cmds {
		b := c.Append(nil)
		if len(b) != lens[i] {
			t.Fatalf("%s: %d bytes, want %d", c.Op, len(b), lens[i])
		}
		var got Command
		if err := Decode(b, &got); err != nil || got != c {
			t.Fatalf("%s: decode = %+v, %v; want %+v", c.Op, got, err, c)
		}
	}
}

func TestDepthLimitsAndOrder(t *testing.T) {
	b := newBook(t)
	for p := int64(90); p < 100; p++ {
		b.limit(1, Buy, p, uint32(p-89))
		b.limit(2, Sell, p+20, 1)
	}
	d := b.e.Depth(Buy, 3, nil)
	wantDepth(t, d, Level{99, 10, 1}, Level{98, 9, 1}, Level{97, 8, 1})
	d = b.e.Depth(Sell, 2, d[:0])
	wantDepth(t, d, Level{110, 1, 1}, Level{111, 1, 1})
	if got := b.e.Depth(Side(9), 5, nil); len(got) != 0 {
		t.Fatalf("depth of bad side = %+v", got)
	}
}

func snapshotBytes(t *testing.T, e *Engine) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
