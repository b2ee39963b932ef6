package orderbook

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Side is the side of the book an order rests on or takes from.
type Side uint8

const (
	Buy  Side = 1
	Sell Side = 2
)

func (s Side) String() string {
	switch s {
	case Buy:
		return "buy"
	case Sell:
		return "sell"
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

// Opposite returns the side an order of side s trades against.
func (s Side) Opposite() Side {
	if s == Buy {
		return Sell
	}
	return Buy
}

// TimeInForce says what happens to the part of a limit order that does not
// trade on arrival.
type TimeInForce uint8

const (
	// GoodTillCancel rests the unfilled remainder on the book.
	GoodTillCancel TimeInForce = 0
	// ImmediateOrCancel cancels the unfilled remainder.
	ImmediateOrCancel TimeInForce = 1
)

// Op is the kind of a command; it is the first byte of every encoded command.
type Op uint8

const (
	OpLimit   Op = 1 // new limit order
	OpMarket  Op = 2 // new market order (the unfilled remainder is canceled)
	OpCancel  Op = 3 // cancel a resting order
	OpReplace Op = 4 // change a resting order's price and/or open quantity
)

func (o Op) String() string {
	switch o {
	case OpLimit:
		return "limit"
	case OpMarket:
		return "market"
	case OpCancel:
		return "cancel"
	case OpReplace:
		return "replace"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Encoded sizes in bytes. All integers are little-endian.
//
//	header   op u8 | client u64 | seq u64                                  17 B
//	limit    header | side u8 | tif u8 | priceTicks i64 | qtyLots u32     31 B
//	market   header | side u8 | qtyLots u32                               22 B
//	cancel   header | origSeq u64                                         25 B
//	replace  header | origSeq u64 | priceTicks i64 | qtyLots u32          37 B
const (
	headerLen  = 1 + 8 + 8
	LimitLen   = headerLen + 1 + 1 + 8 + 4
	MarketLen  = headerLen + 1 + 4
	CancelLen  = headerLen + 8
	ReplaceLen = headerLen + 8 + 8 + 4
	// MaxCommandLen is the size of the largest encoded command.
	MaxCommandLen = ReplaceLen
)

// Errors returned for commands that are rejected. Every rejection leaves the
// engine exactly as it was, including its duplicate-detection table, so a
// rejected command may be resent with the same sequence number.
var (
	// ErrMalformed: the bytes are not a well-formed command (wrong length,
	// unknown op, field out of range). Test with errors.Is.
	ErrMalformed = errors.New("orderbook: malformed command")
	// ErrUnknownCommand: the op byte names no command. Wraps ErrMalformed.
	ErrUnknownCommand = fmt.Errorf("%w: unknown op", ErrMalformed)
	// ErrDuplicate: the client's sequence number is not above the highest
	// one already applied for that client; the command was applied before.
	ErrDuplicate = errors.New("orderbook: duplicate command")
	// ErrUnknownOrder: cancel or replace names no resting order of that
	// client (never placed, already filled or already canceled).
	ErrUnknownOrder = errors.New("orderbook: unknown order")
)

// OrderRef names an order: the client that placed it and the sequence
// number of the command that placed it. Clients therefore know the names of
// their orders without waiting for a reply.
type OrderRef struct {
	Client uint64
	Seq    uint64
}

// Command is a decoded command. Fields that an op does not use are zero.
type Command struct {
	Op     Op
	Client uint64 // client id, nonzero
	Seq    uint64 // per-client sequence number, nonzero, increasing

	Side       Side        // limit, market
	TIF        TimeInForce // limit
	PriceTicks int64       // limit; replace: the new price
	QtyLots    uint32      // limit, market; replace: the new open quantity
	OrigSeq    uint64      // cancel, replace: Seq of the command that placed the order
}

// Ref is the name of the order a limit or market command places.
func (c *Command) Ref() OrderRef { return OrderRef{Client: c.Client, Seq: c.Seq} }

// Target is the name of the order a cancel or replace command addresses.
func (c *Command) Target() OrderRef { return OrderRef{Client: c.Client, Seq: c.OrigSeq} }

// AppendLimit appends an encoded new-limit-order command to dst.
func AppendLimit(dst []byte, client, seq uint64, side Side, tif TimeInForce, priceTicks int64, qtyLots uint32) []byte {
	dst = appendHeader(dst, OpLimit, client, seq)
	dst = append(dst, byte(side), byte(tif))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(priceTicks))
	return binary.LittleEndian.AppendUint32(dst, qtyLots)
}

// AppendMarket appends an encoded market-order command to dst.
func AppendMarket(dst []byte, client, seq uint64, side Side, qtyLots uint32) []byte {
	dst = appendHeader(dst, OpMarket, client, seq)
	dst = append(dst, byte(side))
	return binary.LittleEndian.AppendUint32(dst, qtyLots)
}

// AppendCancel appends an encoded cancel of order (client, origSeq) to dst.
func AppendCancel(dst []byte, client, seq, origSeq uint64) []byte {
	dst = appendHeader(dst, OpCancel, client, seq)
	return binary.LittleEndian.AppendUint64(dst, origSeq)
}

// AppendReplace appends an encoded replace of order (client, origSeq) to
// dst: its price becomes priceTicks and its open quantity qtyLots.
func AppendReplace(dst []byte, client, seq, origSeq uint64, priceTicks int64, qtyLots uint32) []byte {
	dst = appendHeader(dst, OpReplace, client, seq)
	dst = binary.LittleEndian.AppendUint64(dst, origSeq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(priceTicks))
	return binary.LittleEndian.AppendUint32(dst, qtyLots)
}

// Append appends the encoding of c to dst. It does not validate c; Decode
// of the result does.
func (c *Command) Append(dst []byte) []byte {
	switch c.Op {
	case OpLimit:
		return AppendLimit(dst, c.Client, c.Seq, c.Side, c.TIF, c.PriceTicks, c.QtyLots)
	case OpMarket:
		return AppendMarket(dst, c.Client, c.Seq, c.Side, c.QtyLots)
	case OpCancel:
		return AppendCancel(dst, c.Client, c.Seq, c.OrigSeq)
	case OpReplace:
		return AppendReplace(dst, c.Client, c.Seq, c.OrigSeq, c.PriceTicks, c.QtyLots)
	}
	return appendHeader(dst, c.Op, c.Client, c.Seq)
}

func appendHeader(dst []byte, op Op, client, seq uint64) []byte {
	dst = append(dst, byte(op))
	dst = binary.LittleEndian.AppendUint64(dst, client)
	return binary.LittleEndian.AppendUint64(dst, seq)
}

// Decode parses and validates an encoded command into c. On error c is
// unspecified and the error wraps ErrMalformed.
func Decode(b []byte, c *Command) error {
	if len(b) < headerLen {
		return fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), headerLen)
	}
	*c = Command{
		Op:     Op(b[0]),
		Client: binary.LittleEndian.Uint64(b[1:]),
		Seq:    binary.LittleEndian.Uint64(b[9:]),
	}
	want := 0
	switch c.Op {
	case OpLimit:
		want = LimitLen
	case OpMarket:
		want = MarketLen
	case OpCancel:
		want = CancelLen
	case OpReplace:
		want = ReplaceLen
	default:
		return fmt.Errorf("%w %d", ErrUnknownCommand, b[0])
	}
	if len(b) != want {
		return fmt.Errorf("%w: %s command is %d bytes, want %d", ErrMalformed, c.Op, len(b), want)
	}
	if c.Client == 0 {
		return fmt.Errorf("%w: client id 0", ErrMalformed)
	}
	if c.Seq == 0 {
		return fmt.Errorf("%w: sequence number 0", ErrMalformed)
	}
	p := b[headerLen:]
	switch c.Op {
	case OpLimit:
		c.Side, c.TIF = Side(p[0]), TimeInForce(p[1])
		c.PriceTicks = int64(binary.LittleEndian.Uint64(p[2:]))
		c.QtyLots = binary.LittleEndian.Uint32(p[10:])
		if c.TIF != GoodTillCancel && c.TIF != ImmediateOrCancel {
			return fmt.Errorf("%w: time in force %d", ErrMalformed, c.TIF)
		}
	case OpMarket:
		c.Side = Side(p[0])
		c.QtyLots = binary.LittleEndian.Uint32(p[1:])
	case OpCancel:
		c.OrigSeq = binary.LittleEndian.Uint64(p)
	case OpReplace:
		c.OrigSeq = binary.LittleEndian.Uint64(p)
		c.PriceTicks = int64(binary.LittleEndian.Uint64(p[8:]))
		c.QtyLots = binary.LittleEndian.Uint32(p[16:])
	}
	if (c.Op == OpLimit || c.Op == OpMarket) && c.Side != Buy && c.Side != Sell {
		return fmt.Errorf("%w: side %d", ErrMalformed, uint8(c.Side))
	}
	if (c.Op == OpLimit || c.Op == OpReplace) && c.PriceTicks <= 0 {
		return fmt.Errorf("%w: price %d ticks, must be positive", ErrMalformed, c.PriceTicks)
	}
	if c.Op != OpCancel && c.QtyLots == 0 {
		return fmt.Errorf("%w: quantity 0 lots", ErrMalformed)
	}
	if (c.Op == OpCancel || c.Op == OpReplace) && (c.OrigSeq == 0 || c.OrigSeq >= c.Seq) {
		// An order can only be named by a command that comes after it.
		return fmt.Errorf("%w: original sequence %d, must be in [1, %d)", ErrMalformed, c.OrigSeq, c.Seq)
	}
	return nil
}
