package orderbook

import "math/rand/v2"

// LoadGenConfig shapes the stream a LoadGen produces. Zero fields take
// DefaultLoadGenConfig's values; percentages are of all commands, and what
// the percentages leave is good-till-cancel limit orders.
type LoadGenConfig struct {
	Clients          int    // distinct client ids, 1..Clients
	MidPriceTicks    int64  // starting mid price; it then random-walks
	MaxOpenPerClient int    // orders a client keeps open before it cancels its oldest
	MaxQtyLots       uint32 // order sizes are 1..MaxQtyLots
	MarketPct        int    // market orders
	IOCPct           int    // immediate-or-cancel limit orders at or through the touch
	CancelPct        int    // cancels of one of the client's open orders
	ReplacePct       int    // replaces (price and/or size) of an open order
	AggressivePct    int    // share of GTC limits priced through the mid (they trade)
	DuplicatePct     int    // resends of the client's previous command (a retry)
}

// DefaultLoadGenConfig is a mix in the proportions of a liquid book: most
// traffic adds and cancels passive orders near the touch, a minority trades.
func DefaultLoadGenConfig() LoadGenConfig {
	return LoadGenConfig{
		Clients: 16, MidPriceTicks: 10_000, MaxOpenPerClient: 32, MaxQtyLots: 100,
		MarketPct: 4, IOCPct: 4, CancelPct: 30, ReplacePct: 10, AggressivePct: 10, DuplicatePct: 1,
	}
}

// LoadGen produces a deterministic stream of well-formed commands from a
// seed: the same seed and config give the same bytes on every platform
// (math/rand/v2's PCG is specified bit for bit). It models each client's
// belief of its open orders without seeing the engine, so some cancels and
// replaces name orders that have already filled; the engine rejects those
// with ErrUnknownOrder, as a real venue would.
type LoadGen struct {
	cfg     LoadGenConfig
	rng     *rand.Rand
	midTick int64
	clients []genClient
}

type genClient struct {
	id   uint64
	seq  uint64
	open []genOrder // oldest first
	last [MaxCommandLen]byte
	n    int // length of last; 0 before the first command
}

type genOrder struct {
	seq        uint64
	side       Side
	priceTicks int64
	qtyLots    uint32
}

// NewLoadGen returns a generator seeded with seed.
func NewLoadGen(seed uint64, cfg LoadGenConfig) *LoadGen {
	d := DefaultLoadGenConfig()
	if cfg.Clients <= 0 {
		cfg.Clients = d.Clients
	}
	if cfg.MidPriceTicks <= 0 {
		cfg.MidPriceTicks = d.MidPriceTicks
	}
	if cfg.MaxOpenPerClient <= 0 {
		cfg.MaxOpenPerClient = d.MaxOpenPerClient
	}
	if cfg.MaxQtyLots == 0 {
		cfg.MaxQtyLots = d.MaxQtyLots
	}
	g := &LoadGen{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		midTick: cfg.MidPriceTicks,
		clients: make([]genClient, cfg.Clients),
	}
	for i := range g.clients {
		g.clients[i].id = uint64(i + 1)
		g.clients[i].open = make([]genOrder, 0, cfg.MaxOpenPerClient)
	}
	return g
}

// MidPriceTicks is the generator's current mid price.
func (g *LoadGen) MidPriceTicks() int64 { return g.midTick }

// Next appends the next command to dst and returns the extended slice.
func (g *LoadGen) Next(dst []byte) []byte {
	r := g.rng
	// The mid drifts one tick at a time, floored well above zero.
	if r.IntN(8) == 0 {
		g.midTick += int64(r.IntN(3)) - 1
		g.midTick = max(g.midTick, 100)
	}
	c := &g.clients[r.IntN(len(g.clients))]
	if c.n > 0 && r.IntN(100) < g.cfg.DuplicatePct {
		return append(dst, c.last[:c.n]...)
	}
	start := len(dst)
	c.seq++
	roll := r.IntN(100)
	cfg := &g.cfg
	switch {
	case len(c.open) == cap(c.open):
		// Full: cancel the oldest, which keeps the book bounded.
		dst = AppendCancel(dst, c.id, c.seq, c.open[0].seq)
		c.open = append(c.open[:0], c.open[1:]...)
	case roll < cfg.MarketPct:
		dst = AppendMarket(dst, c.id, c.seq, g.side(), g.qty())
	case roll < cfg.MarketPct+cfg.IOCPct:
		s := g.side()
		dst = AppendLimit(dst, c.id, c.seq, s, ImmediateOrCancel, g.through(s), g.qty())
	case roll < cfg.MarketPct+cfg.IOCPct+cfg.CancelPct && len(c.open) > 0:
		i := r.IntN(len(c.open))
		dst = AppendCancel(dst, c.id, c.seq, c.open[i].seq)
		c.open = append(c.open[:i], c.open[i+1:]...)
	case roll < cfg.MarketPct+cfg.IOCPct+cfg.CancelPct+cfg.ReplacePct && len(c.open) > 0:
		o := &c.open[r.IntN(len(c.open))]
		if r.IntN(2) == 0 {
			o.priceTicks = g.passive(o.side)
		}
		o.qtyLots = g.qty()
		dst = AppendReplace(dst, c.id, c.seq, o.seq, o.priceTicks, o.qtyLots)
	default:
		s := g.side()
		p := g.passive(s)
		if r.IntN(100) < cfg.AggressivePct {
			p = g.through(s)
		}
		q := g.qty()
		dst = AppendLimit(dst, c.id, c.seq, s, GoodTillCancel, p, q)
		c.open = append(c.open, genOrder{seq: c.seq, side: s, priceTicks: p, qtyLots: q})
	}
	c.n = copy(c.last[:], dst[start:])
	return dst
}

func (g *LoadGen) side() Side {
	if g.rng.IntN(2) == 0 {
		return Buy
	}
	return Sell
}

// qty favours round and small sizes, as real flow does.
func (g *LoadGen) qty() uint32 {
	q := uint32(g.rng.IntN(int(g.cfg.MaxQtyLots))) + 1
	if g.rng.IntN(2) == 0 && q >= 10 {
		q -= q % 10
	}
	return q
}

// passive prices an order on its own side of the mid, mostly within a few
// ticks of it, with a thin tail further out.
func (g *LoadGen) passive(s Side) int64 {
	off := int64(1 + g.rng.IntN(4))
	if g.rng.IntN(4) == 0 {
		off += int64(g.rng.IntN(20))
	}
	if s == Buy {
		return max(g.midTick-off, 1)
	}
	return g.midTick + off
}

// through prices an order a few ticks past the mid so that it crosses.
func (g *LoadGen) through(s Side) int64 {
	off := int64(g.rng.IntN(4))
	if s == Buy {
		return g.midTick + off
	}
	return max(g.midTick-off, 1)
}
