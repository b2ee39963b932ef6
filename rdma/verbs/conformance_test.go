package verbs

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
	"github.com/rdmaconsensus/mu/rdma/conformance"
)

// backend runs the conformance scenarios on the local RDMA device: every
// node is a Fabric on the same device, talking through its loopback.
type backend struct{}

func (backend) Name() string { return "verbs" }

func (backend) Start(t testing.TB, o conformance.Options) conformance.Cluster {
	var cfg Config
	cl := newCluster(t, o.Nodes, o.RegionBytes, func(c *Config) {
		c.SetTransportTimeoutNs(o.TransportTimeoutNs)
		cfg = *c
	})
	return &confCluster{cl: cl, any: cl.fabrics[1], timeoutNs: cfg.TransportTimeoutNs()}
}

type confCluster struct {
	cl        *cluster
	any       *Fabric // a fabric that stays alive for the clock
	timeoutNs int64
}

func (c *confCluster) Fabric(id rdma.NodeID) rdma.Fabric { return c.cl.fabrics[id] }

func (c *confCluster) Kill(id rdma.NodeID) error {
	if err := c.cl.kill(id); err != nil {
		return fmt.Errorf("kill node %d: %w", id, err)
	}
	for _, f := range c.cl.fabrics {
		c.any = f
		break
	}
	return nil
}

func (c *confCluster) WaitUntil(cond func() bool, limitNs int64) bool {
	return waitUntil(c.any, cond, limitNs)
}

// RetryExceededAfterNs: rxe retries on a timer of whole jiffies, so the
// error may come up to a quarter early relative to the nominal
// (retries+1) x ACK timeout, never sooner.
func (c *confCluster) RetryExceededAfterNs() int64 { return c.timeoutNs * 3 / 4 }

// Reconnect redoes the handshake between a and b: new queue pairs beside
// the old, swapped in once both sides committed.
func (c *confCluster) Reconnect(a, b rdma.NodeID) error {
	fa, fb := c.cl.fabrics[a], c.cl.fabrics[b]
	ea, err := fa.Prepare(b)
	if err != nil {
		return err
	}
	eb, err := fb.Prepare(a)
	if err != nil {
		fa.Abort(b, ea)
		return err
	}
	if err := errors.Join(fa.Commit(b, ea, eb), fb.Commit(a, eb, ea)); err != nil {
		fa.Abort(b, ea)
		fb.Abort(a, eb)
		return err
	}
	return errors.Join(fa.Activate(b, ea), fb.Activate(a, eb))
}

func TestConformance(t *testing.T) {
	conformance.Run(t, backend{})
}
