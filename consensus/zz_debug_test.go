package consensus

import (
	"os"
	"fmt"
	"testing"

	"github.com/rdmaconsensus/mu/sim"
)

func TestZZDebugFailSlow(t *testing.T) {
	sim.Seeds(t, 1, func(t *testing.T, seed uint64) {
		c := newCluster(t, seed, 5, layer2Config)
		ldr := waitLeader(t, c, 20_000_000)
		victim := c.ids[len(c.ids)-1]
		if victim == ldr {
			victim = c.ids[len(c.ids)-2]
		}
		ld := startLoad(c, 3, 20_000)
		_ = ld
		r := c.reps[ldr]
		dump := func(tag string) {
			for i := range r.peers {
				p := &r.peers[i]
				f := followerState(r, p.id)
				t.Logf("%s t=%d peer %d state=%d since=%d acked=%d sent=%d fifo=%d wout=%d gen=%d next=%d commit=%d samples=%d p99=%d stalls=%d", tag, c.w.Now()/1000, p.id, p.state, p.since/1000, p.acked, p.sent, p.fifoLen, p.writesOut, p.gen, r.next, r.commit, f.Samples, f.P99Ns, r.stats.ReclaimStalls)
			}
		}
		c.w.RunFor(25_000_000)
		c.w.RunFor(25_000_000)
		dump("pre")
		c.w.SetLinkDelay(ldr, victim, 1_000_000, 0)
		for k := 0; k < 60; k++ {
			if k < 40 { c.w.RunFor(50_000); continue }
			for j := 0; j < 4; j++ { c.w.RunFor(10_000); t.Logf("t=%d ctr1=%d", c.w.Now()/1000, le.Uint64(c.reps[ldr].region[c.reps[ldr].lay.HeartbeatOffset:])&(1<<56-1)) }
			c.w.RunFor(50_000)
			line := ""
			for _, id := range c.ids {
				rr := c.reps[id]
				l, ok := rr.det.Leader()
				d := rr.pdet
				line += fmt.Sprintf(" [%d %v det=%d/%v alive1=%v stale1=%d bound=%d per=%d rtt=%d st=%+v]", id, rr.role, l, ok, rr.det.Alive(ldr), d.StaleNs(ldr, c.w.Now())/1000, d.FailBoundNs()/1000, d.PeriodNs()/1000, d.ReadRTTNs()/1000, d.Stats())
			}
			t.Logf("t=%d ctr1=%d%s", c.w.Now()/1000, le.Uint64(c.reps[ldr].region[c.reps[ldr].lay.HeartbeatOffset:])&(1<<56-1), line)
		}
		for k := 0; k < 25; k++ {
			c.w.RunFor(1_000_000)
			p := &r.peers[0]
			for i := range r.peers {
				if r.peers[i].id == victim {
					p = &r.peers[i]
				}
			}
			f := followerState(r, p.id)
			t.Logf("slow t=%d victim %d state=%d since=%d acked=%d sent=%d fifo=%d wout=%d gen=%d next=%d commit=%d samples=%d p99=%d stalls=%d leader=%v", c.w.Now()/1000, p.id, p.state, p.since/1000, p.acked, p.sent, p.fifoLen, p.writesOut, p.gen, r.next, r.commit, f.Samples, f.P99Ns, r.stats.ReclaimStalls, r.IsLeader())
		}
		for _, l := range c.leaderLog { t.Log(l) }
		if tr := c.w.Trace(); len(tr) > 0 { os.WriteFile("/tmp/trace202.log", tr, 0o644) }
	})
}
