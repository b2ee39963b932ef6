package wal

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

const benchEntryBytes = 4096

type benchCase struct {
	method SyncMethod
	zeros  bool
}

func (c benchCase) String() string {
	if c.zeros {
		return c.method.String() + "+zeros"
	}
	return c.method.String()
}

var benchCases = []benchCase{
	{SyncFdatasync, false}, {SyncDsync, false}, {SyncDirect, false},
	{SyncFdatasync, true}, {SyncDsync, true}, {SyncDirect, true},
}

var benchGroups = []int{1, 16, 256}

// BenchmarkGroupCommit measures one durable group per op: Append group
// entries of 4 KiB, then Sync. ns/op is the mean group latency; p50 and
// p99 are reported beside it. Run it on the disk the WAL will use
// (TMPDIR), never tmpfs: fsync there proves nothing.
func BenchmarkGroupCommit(b *testing.B) {
	for _, c := range benchCases {
		prealloc := "fallocate"
		if c.zeros {
			prealloc = "zeros"
		}
		for _, group := range benchGroups {
			b.Run(fmt.Sprintf("method=%s/prealloc=%s/group=%d", c.method, prealloc, group), func(b *testing.B) {
				bw := newBenchWAL(b, c, group, b.N)
				lat := make([]time.Duration, b.N)
				b.SetBytes(int64(group * benchEntryBytes))
				b.ResetTimer()
				for i := range b.N {
					lat[i] = bw.commitGroup(b)
				}
				b.StopTimer()
				reportLatency(b, "", lat)
				b.ReportMetric(float64(b.N*group)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// BenchmarkGroupCommitInterleaved runs one group on every method in turn
// within each op, so that a shared disk's drift over the run weighs on all
// methods alike; compare methods by these figures.
func BenchmarkGroupCommitInterleaved(b *testing.B) {
	for _, group := range benchGroups {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			var wals []*benchWAL
			var names []string
			for _, c := range benchCases {
				bw := newBenchWAL(b, c, group, b.N)
				if bw == nil {
					continue
				}
				wals = append(wals, bw)
				names = append(names, c.String())
			}
			lat := make([][]time.Duration, len(wals))
			for j := range lat {
				lat[j] = make([]time.Duration, b.N)
			}
			b.ResetTimer()
			for i := range b.N {
				for j, bw := range wals {
					lat[j][(i+j)%b.N] = bw.commitGroup(b)
				}
			}
			b.StopTimer()
			for j := range wals {
				reportLatency(b, names[j]+"-", lat[j])
			}
		})
	}
}

type benchWAL struct {
	w       *WAL
	next    uint64
	group   int
	payload []byte
}

// newBenchWAL opens a WAL whose one segment holds ops groups, so every op
// measures the same steady-state write and segment creation stays outside
// the timer; nil (after logging why) where the method is refused.
func newBenchWAL(b *testing.B, c benchCase, group, ops int) *benchWAL {
	dir := b.TempDir()
	if isTmpfs(dir) {
		b.Fatalf("%s is tmpfs; point TMPDIR at a real disk", dir)
	}
	recBytes := int64(HeaderBytes + benchEntryBytes)
	w, err := Open(Options{
		Dir: dir, Mode: ModeAsync, Method: c.method, PreallocZeros: c.zeros,
		SegmentBytes:    roundUp(int64(ops*group+1)*recBytes+1<<20, 1<<20),
		FlushIntervalNs: int64(time.Hour),
		MaxPendingBytes: 2 * group * int(recBytes),
	})
	if err != nil {
		b.Logf("%s: %v", c, err)
		return nil
	}
	b.Cleanup(func() { w.Close() })
	bw := &benchWAL{w: w, next: 1, group: group, payload: make([]byte, benchEntryBytes)}
	for i := range bw.payload {
		bw.payload[i] = byte(i)
	}
	if err := w.Append(bw.next, bw.payload); err != nil {
		b.Fatal(err)
	}
	bw.next++
	if err := w.Sync(); err != nil {
		b.Fatal(err)
	}
	// Keep the spare's preallocation off the measured disk.
	w.flushMu.Lock()
	ready := make(chan spareResult, 1)
	ready <- spareResult{path: w.waitSpare()}
	w.spareSeg = ready
	w.flushMu.Unlock()
	return bw
}

func (bw *benchWAL) commitGroup(b *testing.B) time.Duration {
	t0 := time.Now()
	for range bw.group {
		if err := bw.w.Append(bw.next, bw.payload); err != nil {
			b.Fatal(err)
		}
		bw.next++
	}
	if err := bw.w.Sync(); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, prefix+"p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, prefix+"p99-µs")
}
