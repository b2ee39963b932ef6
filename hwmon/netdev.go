package hwmon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/Mellanox/rdmamap"
	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NetdevCollector reads interface error counters and carrier changes over
// rtnetlink. Subscribe additionally listens for link events (RTM_NEWLINK /
// RTM_DELLINK) so a flapping carrier is seen between collections.
type NetdevCollector struct {
	// OnLinkEvent, if set, is called (from the subscription goroutine) for
	// every link event; Monitor uses it to collect early.
	OnLinkEvent func(ifname string)
	// SkipRDMAMapping leaves NetdevStats.RDMADevice empty (it reads /sys).
	SkipRDMAMapping bool

	mu     sync.Mutex
	sub    *rtnetlink.Conn
	subErr error
	events map[string]uint64
	done   chan struct{}
}

func (c *NetdevCollector) Name() string { return "netdev" }

// Subscribe joins the RTMGRP_LINK multicast group. Failure is remembered
// and reported in the signal's note; polling still works without it.
func (c *NetdevCollector) Subscribe() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sub != nil {
		return nil
	}
	conn, err := rtnetlink.Dial(&netlink.Config{Groups: unix.RTMGRP_LINK})
	if err != nil {
		c.subErr = err
		return fmt.Errorf("%w: subscribing to link events: %v", ErrUnavailable, err)
	}
	c.sub, c.subErr, c.events, c.done = conn, nil, map[string]uint64{}, make(chan struct{})
	go c.receive(conn, c.done)
	return nil
}

func (c *NetdevCollector) receive(conn *rtnetlink.Conn, done chan struct{}) {
	defer close(done)
	for {
		msgs, _, err := conn.Receive()
		if err != nil {
			c.mu.Lock()
			if c.sub == conn { // not closed by us: remember why it stopped
				c.subErr = err
			}
			c.mu.Unlock()
			return
		}
		for _, m := range msgs {
			lm, ok := m.(*rtnetlink.LinkMessage)
			if !ok || lm.Attributes == nil {
				continue
			}
			c.mu.Lock()
			c.events[lm.Attributes.Name]++
			cb := c.OnLinkEvent
			c.mu.Unlock()
			if cb != nil {
				cb(lm.Attributes.Name)
			}
		}
	}
}

// Close ends the subscription.
func (c *NetdevCollector) Close() error {
	c.mu.Lock()
	conn, done := c.sub, c.done
	c.sub = nil
	c.mu.Unlock()
	if conn == nil {
		return nil
	}
	err := conn.Close()
	<-done
	return err
}

func (c *NetdevCollector) Collect(_ context.Context, s *Snapshot) {
	conn, err := rtnetlink.Dial(nil)
	if err != nil {
		s.Signals = append(s.Signals, unavailable("netdev", "rtnetlink", fmt.Errorf("dialing rtnetlink: %v", err)))
		return
	}
	defer conn.Close()
	links, err := conn.Link.List()
	if err != nil {
		s.Signals = append(s.Signals, unavailable("netdev", "rtnetlink", fmt.Errorf("listing links: %v", err)))
		return
	}
	c.mu.Lock()
	subscribed, subErr := c.sub != nil, c.subErr
	var stats []NetdevStats
	var skipped []string
	for _, lm := range links {
		n, err := NetdevFromLink(lm)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		if n.Name == "lo" {
			continue
		}
		n.LinkEvents = c.events[n.Name]
		if !c.SkipRDMAMapping {
			n.RDMADevice, _ = rdmamap.GetRdmaDeviceForNetdevice(n.Name) // "" when none
		}
		stats = append(stats, n)
	}
	c.mu.Unlock()
	sort.Slice(stats, func(i, j int) bool { return stats[i].Name < stats[j].Name })
	s.Netdevs = append(s.Netdevs, stats...)
	var parts []string
	for _, n := range stats {
		part := fmt.Sprintf("%s %s carrier_changes %d", n.Name, n.OperState, n.CarrierChanges)
		if n.RDMADevice != "" {
			part += " rdma " + n.RDMADevice
		}
		parts = append(parts, part)
	}
	note := fmt.Sprintf("%d links (%s)", len(stats), strings.Join(parts, "; "))
	switch {
	case subscribed:
		note += "; subscribed to link events"
	case subErr != nil:
		note += "; link event subscription unavailable: " + subErr.Error()
	}
	if len(skipped) > 0 {
		note += "; skipped: " + strings.Join(skipped, "; ")
	}
	s.Signals = append(s.Signals, SignalStatus{Name: "netdev", Source: "rtnetlink", Available: true, Note: note})
}

var operStateNames = []string{"unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"}

// NetdevFromLink converts one RTM_NEWLINK message. A link without 64-bit
// statistics is an error: its counters would otherwise read as zero.
func NetdevFromLink(lm rtnetlink.LinkMessage) (NetdevStats, error) {
	a := lm.Attributes
	if a == nil {
		return NetdevStats{}, fmt.Errorf("link %d: no attributes", lm.Index)
	}
	n := NetdevStats{Name: a.Name, Index: int(lm.Index)}
	if int(a.OperationalState) < len(operStateNames) {
		n.OperState = operStateNames[a.OperationalState]
	} else {
		n.OperState = fmt.Sprintf("state%d", a.OperationalState)
	}
	if a.Carrier != nil {
		n.Carrier = *a.Carrier != 0
	}
	if a.CarrierChanges != nil {
		n.CarrierChanges = uint64(*a.CarrierChanges)
	}
	st := a.Stats64
	if st == nil {
		return n, errors.New(a.Name + ": no IFLA_STATS64")
	}
	n.RxErrors, n.TxErrors = st.RXErrors, st.TXErrors
	n.RxCRCErrors, n.RxFrameErrors = st.RXCRCErrors, st.RXFrameErrors
	n.RxDropped, n.TxDropped = st.RXDropped, st.TXDropped
	n.TxCarrierErr = st.TXCarrierErrors
	return n, nil
}
