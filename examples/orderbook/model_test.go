package orderbook

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// model is a deliberately naive order book: one flat slice of orders, a
// linear scan for the best match on every fill. The engine must agree with
// it trade for trade.
type model struct {
	orders   []mOrder
	lastSeq  map[uint64]uint64
	arrival  uint64
	tradeSeq uint64
}

type mOrder struct {
	ref        OrderRef
	side       Side
	priceTicks int64
	openLots   uint32
	arrival    uint64 // time priority: lower is older
}

func newModel() *model { return &model{lastSeq: map[uint64]uint64{}} }

func (m *model) find(ref OrderRef) int {
	return slices.IndexFunc(m.orders, func(o mOrder) bool { return o.ref == ref })
}

func better(s Side, a, b mOrder) bool {
	if a.priceTicks != b.priceTicks {
		if s == Buy {
			return a.priceTicks > b.priceTicks
		}
		return a.priceTicks < b.priceTicks
	}
	return a.arrival < b.arrival
}

func (m *model) match(s Side, market bool, limit int64, qty uint32, taker OrderRef, trades []Trade) (uint32, []Trade) {
	for qty > 0 {
		best := -1
		for i, o := range m.orders {
			if o.side == s.Opposite() && (best < 0 || better(o.side, o, m.orders[best])) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		o := &m.orders[best]
		if !market && (s == Buy && o.priceTicks > limit || s == Sell && o.priceTicks < limit) {
			break
		}
		f := min(qty, o.openLots)
		qty -= f
		o.openLots -= f
		m.tradeSeq++
		trades = append(trades, Trade{Seq: m.tradeSeq, PriceTicks: o.priceTicks, QtyLots: f, TakerSide: s, Maker: o.ref, Taker: taker, MakerLeftLots: o.openLots})
		if o.openLots == 0 {
			m.orders = slices.Delete(m.orders, best, best+1)
		}
	}
	return qty, trades
}

func (m *model) apply(cmd []byte) ([]Trade, error) {
	var c Command
	if err := Decode(cmd, &c); err != nil {
		return nil, err
	}
	if c.Seq <= m.lastSeq[c.Client] {
		return nil, ErrDuplicate
	}
	var trades []Trade
	switch c.Op {
	case OpLimit, OpMarket:
		left, tr := m.match(c.Side, c.Op == OpMarket, c.PriceTicks, c.QtyLots, c.Ref(), nil)
		trades = tr
		if left > 0 && c.Op == OpLimit && c.TIF == GoodTillCancel {
			m.arrival++
			m.orders = append(m.orders, mOrder{c.Ref(), c.Side, c.PriceTicks, left, m.arrival})
		}
	case OpCancel:
		i := m.find(c.Target())
		if i < 0 {
			return nil, ErrUnknownOrder
		}
		m.orders = slices.Delete(m.orders, i, i+1)
	case OpReplace:
		i := m.find(c.Target())
		if i < 0 {
			return nil, ErrUnknownOrder
		}
		o := m.orders[i]
		if c.PriceTicks == o.priceTicks && c.QtyLots <= o.openLots {
			m.orders[i].openLots = c.QtyLots
			break
		}
		m.orders = slices.Delete(m.orders, i, i+1)
		left, tr := m.match(o.side, false, c.PriceTicks, c.QtyLots, o.ref, nil)
		trades = tr
		if left > 0 {
			m.arrival++
			m.orders = append(m.orders, mOrder{o.ref, o.side, c.PriceTicks, left, m.arrival})
		}
	}
	m.lastSeq[c.Client] = c.Seq
	return trades, nil
}

func (m *model) depth(s Side) []Level {
	var lv []Level
	side := slices.DeleteFunc(slices.Clone(m.orders), func(o mOrder) bool { return o.side != s })
	slices.SortStableFunc(side, func(a, b mOrder) int {
		if better(s, a, b) {
			return -1
		}
		return 1
	})
	for _, o := range side {
		if n := len(lv); n > 0 && lv[n-1].PriceTicks == o.priceTicks {
			lv[n-1].QtyLots += uint64(o.openLots)
			lv[n-1].Orders++
			continue
		}
		lv = append(lv, Level{o.priceTicks, uint64(o.openLots), 1})
	}
	return lv
}

func encodeTrades(ts []Trade) []byte {
	var b []byte
	for i := range ts {
		b = ts[i].Append(b)
	}
	return b
}

func TestEngineMatchesNaiveModel(t *testing.T) {
	seed := testSeed(t)
	// A narrow, busy configuration: few clients, many crossing orders, so
	// queues, partial fills and replaces interact.
	cfg := LoadGenConfig{Clients: 5, MaxOpenPerClient: 12, MaxQtyLots: 30, MarketPct: 6, IOCPct: 6, CancelPct: 25, ReplacePct: 20, AggressivePct: 25, DuplicatePct: 3}
	g := NewLoadGen(seed, cfg)
	e, m := New(Config{OrderCapacity: 4, LevelCapacity: 2}), newModel()
	var cmd []byte
	for i := 0; i < 20000; i++ {
		cmd = g.Next(cmd[:0])
		r, errE := e.Apply(cmd)
		want, errM := m.apply(cmd)
		if !errors.Is(errE, errM) && !(errE == nil && errM == nil) {
			t.Fatalf("command %d %x: engine err %v, model err %v", i, cmd, errE, errM)
		}
		if got := encodeTrades(r.Trades); !bytes.Equal(got, encodeTrades(want)) {
			t.Fatalf("command %d %x: engine trades %+v, model %+v", i, cmd, r.Trades, want)
		}
		if i%500 == 0 || i == 19999 {
			for _, s := range []Side{Buy, Sell} {
				if got, w := e.Depth(s, 1<<20, nil), m.depth(s); !slices.Equal(got, w) {
					t.Fatalf("after command %d: %s depth %+v, model %+v", i, s, got, w)
				}
			}
		}
	}
	if e.TradeCount() < 1000 {
		t.Fatalf("only %d trades: the stream does not exercise matching", e.TradeCount())
	}
}
