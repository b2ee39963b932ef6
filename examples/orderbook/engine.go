// Package orderbook is a limit order book and matching engine written to be
// replicated through mu: a deterministic state machine whose input is a log
// of compact binary commands (new limit order, market order, cancel,
// replace) and whose output is trades.
//
// Matching follows price-time priority: an incoming order trades against the
// best opposite price first and, within a price, against the oldest order
// first; every trade is at the resting (maker) order's price; orders fill
// partially. Each command carries a client id and a per-client sequence
// number: the engine applies a client's command only if its sequence number
// is above every one applied before for that client, which makes retried
// proposals exactly-once.
//
// Determinism: the output depends only on the sequence of commands applied,
// never on map iteration, time or randomness, so replicas fed the same log
// produce byte-identical trades, and Snapshot writes a canonical encoding
// (two engines in the same state write the same bytes).
//
// The apply path does not allocate in steady state: orders and price levels
// live in preallocated pools addressed by int32 indices, and the trades of
// a command are returned in a buffer the engine reuses.
package orderbook

import (
	"encoding/binary"
	"fmt"
)

// Trade is one fill between a resting (maker) order and an incoming (taker)
// order, at the maker's price.
type Trade struct {
	Seq           uint64 // engine-wide trade number, from 1, without gaps
	PriceTicks    int64
	QtyLots       uint32
	TakerSide     Side
	Maker         OrderRef
	Taker         OrderRef
	MakerLeftLots uint32 // maker's open quantity after this trade; 0 = filled
}

// TradeLen is the size of a trade encoded by Trade.Append.
const TradeLen = 8 + 8 + 4 + 1 + 16 + 16 + 4

// Append appends a fixed-size little-endian encoding of t to dst; it is the
// form replicas compare byte for byte.
func (t *Trade) Append(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, t.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.PriceTicks))
	dst = binary.LittleEndian.AppendUint32(dst, t.QtyLots)
	dst = append(dst, byte(t.TakerSide))
	dst = binary.LittleEndian.AppendUint64(dst, t.Maker.Client)
	dst = binary.LittleEndian.AppendUint64(dst, t.Maker.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, t.Taker.Client)
	dst = binary.LittleEndian.AppendUint64(dst, t.Taker.Seq)
	return binary.LittleEndian.AppendUint32(dst, t.MakerLeftLots)
}

// Result describes what an applied command did.
type Result struct {
	Op  Op
	Ref OrderRef // the order placed (limit, market) or addressed (cancel, replace)
	// FilledLots is how much of Ref traded during this command.
	FilledLots uint64
	// RestingLots is Ref's open quantity on the book after this command.
	RestingLots uint32
	// CanceledLots is open quantity removed without trading: a cancel, the
	// unfilled rest of a market or immediate-or-cancel order, a replace
	// that lowers the quantity.
	CanceledLots uint64
	// Trades made by this command, in order. The slice is the engine's
	// buffer: it is valid until the next Apply.
	Trades []Trade
}

// Level is one price level of the book, as reported by Depth.
type Level struct {
	PriceTicks int64
	QtyLots    uint64 // total open quantity at this price
	Orders     int    // number of resting orders at this price
}

// OrderInfo describes a resting order.
type OrderInfo struct {
	Side       Side
	PriceTicks int64
	OpenLots   uint32
}

// Config sizes the engine's preallocated pools. Exceeding a capacity is
// allowed (the pool grows, which allocates); it is a hint, not a limit.
type Config struct {
	OrderCapacity  int // resting orders; default 1<<16
	LevelCapacity  int // price levels over both sides; default 1<<12
	ClientCapacity int // distinct clients; default 1<<10
	TradeCapacity  int // trades one command may make without growing; default 1<<10
}

// DefaultConfig returns the capacities used when a Config field is zero.
func DefaultConfig() Config {
	return Config{OrderCapacity: 1 << 16, LevelCapacity: 1 << 12, ClientCapacity: 1 << 10, TradeCapacity: 1 << 10}
}

// nilIndex marks the absence of an order or level in the int32-linked pools.
const nilIndex = -1

type order struct {
	ref        OrderRef
	priceTicks int64
	openLots   uint32
	side       Side
	level      int32 // index into Engine.levels
	prev, next int32 // FIFO neighbours within the level, older and newer
}

type level struct {
	priceTicks int64
	totalLots  uint64
	count      int32
	head, tail int32 // oldest and newest order
}

// levelRef is one entry of a side's sorted ladder.
type levelRef struct {
	key   int64 // priceTicks for bids, -priceTicks for asks: best is the largest key
	level int32
}

// bookSide is one side's price ladder, sorted by ascending key so that the
// best price is last and consuming it is a pop.
type bookSide struct {
	ladder []levelRef
}

// Engine is the order book state machine. It is not safe for concurrent
// use: a replica applies its log from one goroutine.
type Engine struct {
	cfg        Config
	orders     []order
	freeOrders []int32
	levels     []level
	freeLevels []int32
	sides      [2]bookSide // indexed by Side-1
	byRef      map[OrderRef]int32
	// lastSeq is the highest applied sequence number per client.
	lastSeq  map[uint64]uint64
	tradeSeq uint64
	trades   []Trade
	// appliedCommands counts commands that changed the engine.
	appliedCommands uint64
}

// New returns an empty engine with pools sized by cfg (zero fields take
// DefaultConfig's values).
func New(cfg Config) *Engine {
	d := DefaultConfig()
	if cfg.OrderCapacity <= 0 {
		cfg.OrderCapacity = d.OrderCapacity
	}
	if cfg.LevelCapacity <= 0 {
		cfg.LevelCapacity = d.LevelCapacity
	}
	if cfg.ClientCapacity <= 0 {
		cfg.ClientCapacity = d.ClientCapacity
	}
	if cfg.TradeCapacity <= 0 {
		cfg.TradeCapacity = d.TradeCapacity
	}
	e := &Engine{
		cfg:        cfg,
		orders:     make([]order, 0, cfg.OrderCapacity),
		freeOrders: make([]int32, 0, cfg.OrderCapacity),
		levels:     make([]level, 0, cfg.LevelCapacity),
		freeLevels: make([]int32, 0, cfg.LevelCapacity),
		byRef:      make(map[OrderRef]int32, cfg.OrderCapacity),
		lastSeq:    make(map[uint64]uint64, cfg.ClientCapacity),
		trades:     make([]Trade, 0, cfg.TradeCapacity),
	}
	for i := range e.sides {
		e.sides[i].ladder = make([]levelRef, 0, cfg.LevelCapacity/2)
	}
	return e
}

// Apply decodes and applies one command. A nil error means the command
// took effect and Result says what it did. A non-nil error means the engine
// is unchanged: the command was malformed (errors.Is ErrMalformed), a
// duplicate (ErrDuplicate) or named an order that is not resting
// (ErrUnknownOrder). Every replica rejects the same commands, so a
// rejection is an outcome, not a replica fault.
func (e *Engine) Apply(cmd []byte) (Result, error) {
	var c Command
	if err := Decode(cmd, &c); err != nil {
		return Result{}, err
	}
	return e.apply(&c)
}

func (e *Engine) apply(c *Command) (Result, error) {
	if c.Seq <= e.lastSeq[c.Client] {
		return Result{}, ErrDuplicate
	}
	e.trades = e.trades[:0]
	var r Result
	switch c.Op {
	case OpLimit, OpMarket:
		r = e.place(c)
	case OpCancel:
		oi, ok := e.byRef[c.Target()]
		if !ok {
			return Result{}, ErrUnknownOrder
		}
		r = Result{Op: OpCancel, Ref: c.Target(), CanceledLots: uint64(e.orders[oi].openLots)}
		e.remove(oi)
	case OpReplace:
		oi, ok := e.byRef[c.Target()]
		if !ok {
			return Result{}, ErrUnknownOrder
		}
		r = e.replace(c, oi)
	default:
		// Decode admits only the ops above; reaching here is a bug.
		panic(fmt.Sprintf("orderbook: apply of undecoded op %d", c.Op))
	}
	e.lastSeq[c.Client] = c.Seq
	e.appliedCommands++
	r.Trades = e.trades
	return r, nil
}

// place handles a new limit or market order.
func (e *Engine) place(c *Command) Result {
	r := Result{Op: c.Op, Ref: c.Ref()}
	left := e.match(c.Side, c.Op == OpMarket, c.PriceTicks, c.QtyLots, r.Ref)
	r.FilledLots = uint64(c.QtyLots - left)
	if left == 0 {
		return r
	}
	if c.Op == OpMarket || c.TIF == ImmediateOrCancel {
		r.CanceledLots = uint64(left)
		return r
	}
	oi := e.allocOrder()
	e.orders[oi] = order{ref: r.Ref, priceTicks: c.PriceTicks, openLots: left, side: c.Side}
	e.rest(oi)
	r.RestingLots = left
	return r
}

// replace changes a resting order. Lowering the quantity at the same price
// keeps the order's place in the queue; any other change re-enters it as a
// new arrival, which may trade if the new price crosses.
func (e *Engine) replace(c *Command, oi int32) Result {
	o := &e.orders[oi]
	r := Result{Op: OpReplace, Ref: o.ref}
	if c.PriceTicks == o.priceTicks && c.QtyLots <= o.openLots {
		diff := o.openLots - c.QtyLots
		o.openLots = c.QtyLots
		e.levels[o.level].totalLots -= uint64(diff)
		r.CanceledLots = uint64(diff)
		r.RestingLots = c.QtyLots
		return r
	}
	ref, side := o.ref, o.side
	e.unlink(oi)
	left := e.match(side, false, c.PriceTicks, c.QtyLots, ref)
	r.FilledLots = uint64(c.QtyLots - left)
	if left == 0 {
		delete(e.byRef, ref)
		e.freeOrders = append(e.freeOrders, oi)
		return r
	}
	o = &e.orders[oi]
	o.priceTicks, o.openLots = c.PriceTicks, left
	e.rest(oi)
	r.RestingLots = left
	return r
}

// match trades an incoming order of side takerSide against the opposite
// side, best price first, oldest first, until qtyLots is done or the best
// opposite price no longer crosses limitTicks (ignored when market). It
// returns the quantity left unfilled.
func (e *Engine) match(takerSide Side, market bool, limitTicks int64, qtyLots uint32, taker OrderRef) uint32 {
	opp := &e.sides[takerSide.Opposite()-1]
	for qtyLots > 0 && len(opp.ladder) > 0 {
		top := len(opp.ladder) - 1
		li := opp.ladder[top].level
		lv := &e.levels[li]
		if !market && ((takerSide == Buy && lv.priceTicks > limitTicks) || (takerSide == Sell && lv.priceTicks < limitTicks)) {
			break
		}
		for qtyLots > 0 && lv.head != nilIndex {
			mi := lv.head
			m := &e.orders[mi]
			fill := min(qtyLots, m.openLots)
			qtyLots -= fill
			m.openLots -= fill
			lv.totalLots -= uint64(fill)
			e.tradeSeq++
			e.trades = append(e.trades, Trade{
				Seq: e.tradeSeq, PriceTicks: lv.priceTicks, QtyLots: fill, TakerSide: takerSide,
				Maker: m.ref, Taker: taker, MakerLeftLots: m.openLots,
			})
			if m.openLots == 0 {
				lv.head = m.next
				if lv.head != nilIndex {
					e.orders[lv.head].prev = nilIndex
				} else {
					lv.tail = nilIndex
				}
				lv.count--
				delete(e.byRef, m.ref)
				e.freeOrders = append(e.freeOrders, mi)
			}
		}
		if lv.head == nilIndex {
			opp.ladder = opp.ladder[:top]
			e.freeLevels = append(e.freeLevels, li)
		}
	}
	return qtyLots
}

func sideKey(s Side, priceTicks int64) int64 {
	if s == Buy {
		return priceTicks
	}
	return -priceTicks
}

// search returns the first ladder position whose key is >= key.
func (b *bookSide) search(key int64) int {
	lo, hi := 0, len(b.ladder)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if b.ladder[mid].key < key {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// rest appends order oi (price, side, openLots and ref set) to the tail of
// its price level, creating the level if needed, and indexes it by ref.
func (e *Engine) rest(oi int32) {
	o := &e.orders[oi]
	side := &e.sides[o.side-1]
	key := sideKey(o.side, o.priceTicks)
	var li int32
	// New prices arrive most often at or near the top of the book, which is
	// the end of the ladder.
	if n := len(side.ladder); n > 0 && side.ladder[n-1].key == key {
		li = side.ladder[n-1].level
	} else {
		pos := side.search(key)
		if pos < len(side.ladder) && side.ladder[pos].key == key {
			li = side.ladder[pos].level
		} else {
			li = e.allocLevel(o.priceTicks)
			side.ladder = append(side.ladder, levelRef{})
			copy(side.ladder[pos+1:], side.ladder[pos:])
			side.ladder[pos] = levelRef{key: key, level: li}
		}
	}
	o = &e.orders[oi] // allocLevel does not move orders, but keep the rule simple
	lv := &e.levels[li]
	o.level, o.prev, o.next = li, lv.tail, nilIndex
	if lv.tail != nilIndex {
		e.orders[lv.tail].next = oi
	} else {
		lv.head = oi
	}
	lv.tail = oi
	lv.count++
	lv.totalLots += uint64(o.openLots)
	e.byRef[o.ref] = oi
}

// unlink takes order oi out of its level (dropping the level if it empties)
// but keeps its pool slot and its byRef entry.
func (e *Engine) unlink(oi int32) {
	o := &e.orders[oi]
	li := o.level
	lv := &e.levels[li]
	if o.prev != nilIndex {
		e.orders[o.prev].next = o.next
	} else {
		lv.head = o.next
	}
	if o.next != nilIndex {
		e.orders[o.next].prev = o.prev
	} else {
		lv.tail = o.prev
	}
	lv.count--
	lv.totalLots -= uint64(o.openLots)
	o.prev, o.next, o.level = nilIndex, nilIndex, nilIndex
	if lv.count > 0 {
		return
	}
	side := &e.sides[o.side-1]
	pos := side.search(sideKey(o.side, lv.priceTicks))
	if pos >= len(side.ladder) || side.ladder[pos].level != li {
		panic("orderbook: level missing from its ladder")
	}
	side.ladder = append(side.ladder[:pos], side.ladder[pos+1:]...)
	e.freeLevels = append(e.freeLevels, li)
}

// remove deletes a resting order from the book entirely.
func (e *Engine) remove(oi int32) {
	ref := e.orders[oi].ref
	e.unlink(oi)
	delete(e.byRef, ref)
	e.freeOrders = append(e.freeOrders, oi)
}

func (e *Engine) allocOrder() int32 {
	if n := len(e.freeOrders); n > 0 {
		oi := e.freeOrders[n-1]
		e.freeOrders = e.freeOrders[:n-1]
		return oi
	}
	e.orders = append(e.orders, order{})
	return int32(len(e.orders) - 1)
}

func (e *Engine) allocLevel(priceTicks int64) int32 {
	var li int32
	if n := len(e.freeLevels); n > 0 {
		li = e.freeLevels[n-1]
		e.freeLevels = e.freeLevels[:n-1]
	} else {
		e.levels = append(e.levels, level{})
		li = int32(len(e.levels) - 1)
	}
	e.levels[li] = level{priceTicks: priceTicks, head: nilIndex, tail: nilIndex}
	return li
}

// Depth appends up to maxLevels price levels of side s to dst, best price
// first, and returns the extended slice.
func (e *Engine) Depth(s Side, maxLevels int, dst []Level) []Level {
	if s != Buy && s != Sell {
		return dst
	}
	ladder := e.sides[s-1].ladder
	for i := len(ladder) - 1; i >= 0 && maxLevels > 0; i-- {
		lv := &e.levels[ladder[i].level]
		dst = append(dst, Level{PriceTicks: lv.priceTicks, QtyLots: lv.totalLots, Orders: int(lv.count)})
		maxLevels--
	}
	return dst
}

// Best returns the best price level of side s, or false if s is empty.
func (e *Engine) Best(s Side) (Level, bool) {
	var buf [1]Level
	d := e.Depth(s, 1, buf[:0])
	if len(d) == 0 {
		return Level{}, false
	}
	return d[0], true
}

// Order reports the resting order ref, or false if it is not on the book.
func (e *Engine) Order(ref OrderRef) (OrderInfo, bool) {
	oi, ok := e.byRef[ref]
	if !ok {
		return OrderInfo{}, false
	}
	o := &e.orders[oi]
	return OrderInfo{Side: o.side, PriceTicks: o.priceTicks, OpenLots: o.openLots}, true
}

// RestingOrders is the number of orders on the book.
func (e *Engine) RestingOrders() int { return len(e.byRef) }

// AppliedCommands is the number of commands that took effect.
func (e *Engine) AppliedCommands() uint64 { return e.appliedCommands }

// TradeCount is the number of trades made so far (the last trade's Seq).
func (e *Engine) TradeCount() uint64 { return e.tradeSeq }

// LastSeq is the highest sequence number applied for client, 0 if none.
func (e *Engine) LastSeq(client uint64) uint64 { return e.lastSeq[client] }
