package orderbook_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/rdmaconsensus/mu/examples/orderbook"
)

func Example() {
	e := orderbook.New(orderbook.Config{})
	// Client 1 rests two asks; client 2 buys through both.
	e.Apply(orderbook.AppendLimit(nil, 1, 1, orderbook.Sell, orderbook.GoodTillCancel, 10_001, 30))
	e.Apply(orderbook.AppendLimit(nil, 1, 2, orderbook.Sell, orderbook.GoodTillCancel, 10_002, 30))
	r, _ := e.Apply(orderbook.AppendLimit(nil, 2, 1, orderbook.Buy, orderbook.GoodTillCancel, 10_002, 50))
	for _, t := range r.Trades {
		fmt.Printf("trade %d: %d lots at %d, maker %d/%d\n", t.Seq, t.QtyLots, t.PriceTicks, t.Maker.Client, t.Maker.Seq)
	}
	best, _ := e.Best(orderbook.Sell)
	fmt.Printf("best ask %d x %d\n", best.PriceTicks, best.QtyLots)

	// A retried command is recognised and not applied twice.
	_, err := e.Apply(orderbook.AppendLimit(nil, 2, 1, orderbook.Buy, orderbook.GoodTillCancel, 10_002, 50))
	fmt.Println(errors.Is(err, orderbook.ErrDuplicate))

	// Client 1 cancels what is left of its second ask.
	r, _ = e.Apply(orderbook.AppendCancel(nil, 1, 3, 2))
	fmt.Printf("canceled %d lots\n", r.CanceledLots)

	var snap bytes.Buffer
	e.Snapshot(&snap)
	replica := orderbook.New(orderbook.Config{})
	fmt.Println(replica.Restore(&snap), replica.RestingOrders())
	// Output:
	// trade 1: 30 lots at 10001, maker 1/1
	// trade 2: 20 lots at 10002, maker 1/2
	// best ask 10002 x 10
	// true
	// canceled 10 lots
	// <nil> 0
}
