package consensus

import (
	"os"
	"testing"

	"github.com/rdmaconsensus/mu/sim"
)

func TestZZDebug37(t *testing.T) {
	sim.Seeds(t, 1, func(t *testing.T, seed uint64) {
		c := newCluster(t, seed, 5, layer2Config)
		ldr := waitLeader(t, c, 20_000_000)
		victim := c.ids[len(c.ids)-1]
		if victim == ldr {
			victim = c.ids[len(c.ids)-2]
		}
		ld := startLoad(c, 3, 20_000)
		c.w.RunFor(25_000_000)
		r := c.reps[ldr]
		pre0 := c.w.Now()
		c.w.RunFor(25_000_000)
		slow0 := c.w.Now()
		st0 := r.Stats()
		c.w.SetLinkDelay(ldr, victim, 1_000_000, 0)
		c.w.RunFor(25_000_000)
		slow1 := c.w.Now()
		st1 := r.Stats()
		t.Logf("leader %d victim %d; stats before %+v\nafter %+v", ldr, victim, st0, st1)
		for _, w := range [][2]int64{{pre0, slow0}, {slow0, slow1}} {
			n, big := 0, 0
			var hist [12]int
			for _, op := range ld.acked {
				if op.node == ldr && op.call >= w[0] && op.call < w[1] {
					n++
					l := op.ret - op.call
					b := int(l / 5000)
					if b > 11 { b = 11 }
					hist[b]++
					if l > 25_000 {
						big++
						t.Logf("  slow op call=%d (abs %d) lat=%d idx=%d", (op.call-w[0])/1000, op.call, l, op.index)
					}
				}
			}
			t.Logf("window %d: n=%d >25us=%d hist(5us)=%v", w[0]/1000, n, big, hist)
		}
		for _, l := range c.leaderLog { t.Log(l) }
		t.Logf("slow0=%d", slow0)
		if tr := c.w.Trace(); len(tr) > 0 { os.WriteFile("/tmp/trace37.log", tr, 0o644) }
	})
}
