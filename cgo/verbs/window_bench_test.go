package verbs

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkPermissionSwitch times, in one run and interleaved so they share
// the host's conditions, the two ways to open and close a queue pair's
// remote write: a type 2 window bound to it and locally invalidated (post
// to completion: the request goes through the send queue and the provider's
// completion path), and the queue pair's access flags changed in place with
// ibv_modify_qp (one syscall). Each iteration does all four; the reported
// metrics are each operation's median and 99th percentile in microseconds.
//
//	scripts/softroce/run -- build/rdmatest/cgo_verbs.test -test.run '^$' -test.bench PermissionSwitch -test.benchtime 2000x
func BenchmarkPermissionSwitch(b *testing.B) {
	r := newWindowRig(b)
	mw, err := r.pd.AllocMW()
	if err != nil {
		b.Fatalf("AllocMW(type 2): %v", err)
	}
	b.Cleanup(func() { closeOK(b, mw) })
	qp := r.qp[1]
	lat := map[string][]time.Duration{}
	names := []string{"bind", "invalidate", "modify_qp-grant", "modify_qp-revoke"}
	for _, n := range names {
		lat[n] = make([]time.Duration, 0, b.N)
	}
	b.ResetTimer()
	for range b.N {
		key := mw.NextRKey()
		w, err := mw.BindWR(0, r.tgtMR, r.windowOff, r.windowSize, AccessRemoteRead|AccessRemoteWrite, key, 0)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if wc := r.post1(b, 1, w); wc.Status != WCSuccess {
			b.Fatalf("bind: %v", wc.Status)
		}
		t1 := time.Now()
		if wc := r.post1(b, 1, InvalidateWR(0, key, 0)); wc.Status != WCSuccess {
			b.Fatalf("invalidate: %v", wc.Status)
		}
		t2 := time.Now()
		if err := qp.SetAccess(AccessRemoteRead | AccessRemoteWrite); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := qp.SetAccess(AccessRemoteRead); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		lat["bind"] = append(lat["bind"], t1.Sub(t0))
		lat["invalidate"] = append(lat["invalidate"], t2.Sub(t1))
		lat["modify_qp-grant"] = append(lat["modify_qp-grant"], t3.Sub(t2))
		lat["modify_qp-revoke"] = append(lat["modify_qp-revoke"], t4.Sub(t3))
	}
	b.StopTimer()
	for _, n := range names {
		d := lat[n]
		slices.Sort(d)
		p50, p99 := d[len(d)/2], d[min(len(d)-1, len(d)*99/100)]
		b.ReportMetric(float64(p50.Nanoseconds())/1e3, n+"-p50-µs")
		b.ReportMetric(float64(p99.Nanoseconds())/1e3, n+"-p99-µs")
		if b.N >= 100 {
			b.Log(fmt.Sprintf("%-17s p50 %8.1f µs  p99 %8.1f µs  (%d samples)", n, float64(p50.Nanoseconds())/1e3, float64(p99.Nanoseconds())/1e3, len(d)))
		}
	}
}
