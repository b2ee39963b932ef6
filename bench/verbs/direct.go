package main

import (
	"fmt"
	"math/rand/v2"
	"runtime"

	ibv "github.com/rdmaconsensus/mu/cgo/verbs"
)

// directPair is two RC QPs driven through cgo/verbs alone, without the
// rdma/verbs layer: it separates that layer's cost from the binding's.
type directPair struct {
	ctx  *ibv.Context
	pd   *ibv.PD
	cq   *ibv.CQ
	mem  [2]*ibv.Memory
	mr   [2]*ibv.MR
	qp   [2]*ibv.QP
	wcs  []ibv.WC
	wr   []ibv.SendWR
	tk   ticker
	errs []error
}

func newDirectPair(dev string, gidIndex int, tk ticker) (*directPair, error) {
	d := &directPair{wcs: make([]ibv.WC, 16), wr: make([]ibv.SendWR, 1), tk: tk}
	var err error
	if d.ctx, err = ibv.Open(dev); err != nil {
		return nil, err
	}
	fail := func(e error) (*directPair, error) { d.close(); return nil, e }
	pa, err := d.ctx.QueryPort(1)
	if err != nil {
		return fail(err)
	}
	gid, err := d.ctx.QueryGID(1, gidIndex)
	if err != nil {
		return fail(err)
	}
	if d.pd, err = d.ctx.AllocPD(); err != nil {
		return fail(err)
	}
	if d.cq, err = d.ctx.CreateCQ(256); err != nil {
		return fail(err)
	}
	for i := range 2 {
		if d.mem[i], err = ibv.AllocMemory(1 << 16); err != nil {
			return fail(err)
		}
		if d.mr[i], err = d.pd.RegisterMemory(d.mem[i], ibv.AccessLocalWrite|ibv.AccessRemoteRead|ibv.AccessRemoteWrite); err != nil {
			return fail(err)
		}
		if d.qp[i], err = d.pd.CreateQP(d.cq, ibv.QPConfig{MaxSendWR: 128}); err != nil {
			return fail(err)
		}
	}
	psn := [2]uint32{rand.Uint32() & 0xffffff, rand.Uint32() & 0xffffff}
	for i := range 2 {
		p := ibv.ConnParams{
			DGID: gid, DestQPN: d.qp[1-i].Num(), RQPSN: psn[1-i], SQPSN: psn[i],
			Access: ibv.AccessRemoteRead | ibv.AccessRemoteWrite, Port: 1, SGIDIndex: uint8(gidIndex),
			HopLimit: 64, PathMTU: pa.ActiveMTU, Timeout: 14, RetryCount: 7, RNRRetry: 7,
			MinRNRTimer: 12, MaxRdAtomic: 16, MaxDestRdAtomic: 16,
		}
		if err := d.qp[i].Connect(&p); err != nil {
			return fail(err)
		}
	}
	return d, nil
}

func (d *directPair) close() {
	for i := range 2 {
		if d.qp[i] != nil {
			d.qp[i].Close()
		}
		if d.mr[i] != nil {
			d.mr[i].Close()
		}
		if d.mem[i] != nil {
			d.mem[i].Close()
		}
	}
	if d.cq != nil {
		d.cq.Close()
	}
	if d.pd != nil {
		d.pd.Close()
	}
	if d.ctx != nil {
		d.ctx.Close()
	}
}

// latency times post-to-completion of one signaled op through cgo/verbs.
func (d *directPair) latency(o options, op ibv.Opcode) (result, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d.wr[0] = ibv.SendWR{
		Opcode: op, Flags: ibv.FlagSignaled, Length: uint32(o.sizeBytes),
		LocalAddr: d.mr[0].Addr(), LKey: d.mr[0].LKey(),
		RemoteAddr: d.mr[1].Addr() + 4096, RKey: d.mr[1].RKey(),
	}
	h := newHist()
	for i := -o.warmup; i < o.latIters; i++ {
		d.wr[0].ID = uint64(i + o.warmup)
		start := rdtsc()
		if _, err := d.qp[0].Post(d.wr); err != nil {
			return result{}, err
		}
		n := 0
		for n == 0 {
			var err error
			if n, err = d.cq.PollSpin(d.wcs, o.spins); err != nil {
				return result{}, err
			}
		}
		el := d.tk.ns(rdtsc() - start)
		if err := d.wcs[0].Err(); err != nil {
			return result{}, fmt.Errorf("%v: %w", op, err)
		}
		if i >= 0 {
			h.RecordValue(el)
		}
	}
	return summarize(h), nil
}
