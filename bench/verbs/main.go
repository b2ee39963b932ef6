// Command verbs measures mu's RDMA path (rdma/verbs over cgo/verbs) on a
// real device and runs perftest's ib_write_lat, ib_read_lat and ib_write_bw
// on the same device in the same run, printing both side by side.
//
// Both ends are on one device (two fabrics, or perftest's server and client
// on the device's own IP), so figures compare the binding, not the network.
//
// What is compared with what:
//
//   - write latency: perftest's ib_write_lat is a ping-pong; each side
//     busy-polls its memory for the other's write and answers with a write,
//     and it reports half the round trip. mu's "write ping-pong" does exactly
//     that (two pinned goroutines, unsignaled writes, memory polling), so it
//     is compared one to one with t_typical (perftest's median) and its
//     percentiles.
//   - write completion: a signaled write's completion needs the request to
//     land and the ACK to return: a full round trip through the transport.
//     It is what mu's commit path waits for, so it is printed too, next to
//     2 x ib_write_lat t_typical, the closest perftest figure (the ping-pong
//     round trip has two one-way writes; the completion has one write and
//     one ACK).
//   - read latency: ib_read_lat reports post-to-completion of one read, the
//     same as mu's.
//   - message rate: 64-byte writes kept in flight up to the queue depth;
//     perftest's ib_write_bw posts one request per call and signals every
//     100th, mu posts 32 per call (one crossing) and signals the last.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	ibv "github.com/rdmaconsensus/mu/cgo/verbs"
	"github.com/rdmaconsensus/mu/rdma"
	rverbs "github.com/rdmaconsensus/mu/rdma/verbs"
)

type options struct {
	device    string
	gidIndex  int
	sizeBytes int
	latIters  int
	bwIters   int
	warmup    int
	perftest  bool
	serverIP  string
	port      int
	sweep     bool
	inline    int
	rounds    int
	rdAtomic  int
	spins     int
}

// Message-rate and polling settings; see the package comment.
const (
	rateBatch       = 32
	rateSignalEvery = 32
	pollSpins       = 64
)

func main() {
	var o options
	flag.StringVar(&o.device, "device", "", "RDMA device (default: the first)")
	flag.IntVar(&o.gidIndex, "gid-index", -1, "GID index (-1: the first IPv4 RoCE v2 GID)")
	flag.IntVar(&o.sizeBytes, "size", 64, "message size in bytes")
	flag.IntVar(&o.latIters, "iters", 10000, "latency iterations (each of mu and perftest)")
	flag.IntVar(&o.bwIters, "bw-iters", 50000, "message-rate iterations")
	flag.IntVar(&o.warmup, "warmup", 500, "warm-up iterations before each latency run")
	flag.BoolVar(&o.perftest, "perftest", true, "also run perftest on the same device")
	flag.StringVar(&o.serverIP, "ip", "", "IP perftest's client connects to (default: from the device's IPv4 GID)")
	flag.IntVar(&o.port, "port", 18515, "perftest TCP port")
	flag.IntVar(&o.inline, "inline", int(rverbs.DefaultConfig().MaxInline), "inline data size to ask for (0: never inline; see rdma/verbs Config.MaxInline)")
	flag.IntVar(&o.rdAtomic, "rd-atomic", 0, "reads/atomics in flight per connection (0: rdma/verbs default)")
	flag.IntVar(&o.spins, "spins", pollSpins, "empty polls inside C per Poll call while waiting")
	flag.IntVar(&o.rounds, "rounds", 6, "rounds of mu then perftest; the table shows medians")
	flag.BoolVar(&o.sweep, "sweep", false, "also sweep message-rate batch, signaling and poll spins")
	flag.Parse()
	if o.rounds < 1 || o.latIters < 1 || o.bwIters < 1 || o.sizeBytes < 1 || o.sizeBytes > 4096 {
		fmt.Fprintln(os.Stderr, "mu-bench-verbs: -rounds, -iters, -bw-iters must be >= 1 and -size 1..4096")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mu-bench-verbs:", err)
		os.Exit(1)
	}
}

// sample is one round of every measurement.
type sample struct {
	muPingPong, muCompletion, muRead, muRate result
	directCompletion, directRead             result
	ptWrite, ptRead, ptBW                    result
}

// medians takes the median of each figure over the rounds that produced it.
func medians(rs []sample) sample {
	pick := func(get func(*sample) *result) result {
		var p50, p99, p999, mpps []float64
		for i := range rs {
			r := get(&rs[i])
			if !r.ok {
				continue
			}
			p50, p99, p999, mpps = append(p50, r.p50), append(p99, r.p99), append(p999, r.p999), append(mpps, r.mpps)
		}
		if len(p50) == 0 {
			return result{}
		}
		return result{p50: median(p50), p99: median(p99), p999: median(p999), mpps: median(mpps), ok: true}
	}
	return sample{
		muPingPong:       pick(func(s *sample) *result { return &s.muPingPong }),
		muCompletion:     pick(func(s *sample) *result { return &s.muCompletion }),
		muRead:           pick(func(s *sample) *result { return &s.muRead }),
		muRate:           pick(func(s *sample) *result { return &s.muRate }),
		directCompletion: pick(func(s *sample) *result { return &s.directCompletion }),
		directRead:       pick(func(s *sample) *result { return &s.directRead }),
		ptWrite:          pick(func(s *sample) *result { return &s.ptWrite }),
		ptRead:           pick(func(s *sample) *result { return &s.ptRead }),
		ptBW:             pick(func(s *sample) *result { return &s.ptBW }),
	}
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// result holds one measurement in microseconds (or Mpps for rates).
type result struct {
	p50, p99, p999 float64
	mpps           float64
	ok             bool
}

func run(o options) error {
	// Keep a P idle beside the two busy-polling goroutines of the
	// ping-pong: with every P busy, sysmon takes the P of any goroutine
	// that spends over 20 µs in C (a post runs the Soft-RoCE transport in
	// the system call) and keeps waking every 20 µs to do so, stealing a
	// vCPU from the pollers. An idle P makes it leave them alone.
	if runtime.GOMAXPROCS(0) < 3 {
		runtime.GOMAXPROCS(3)
	}
	pair, err := newPair(o)
	if err != nil {
		return err
	}
	defer pair.close()
	dev := pair.a.Device()
	ip := o.serverIP
	if ip == "" {
		if ip, err = deviceIP(dev); err != nil {
			return err
		}
	}
	fmt.Printf("# mu-bench-verbs: device %s, GID IP %s, %d B messages, %d latency iterations, %d rate iterations, %d rounds\n",
		dev, ip, o.sizeBytes, o.latIters, o.bwIters, o.rounds)
	fmt.Printf("# host: %s, GOMAXPROCS %d, max inline %d B\n", kernel(), runtime.GOMAXPROCS(0), pair.a.MaxInline())

	tk := calibrate()
	nowNs, tscNs, pollNs := pair.costs(tk)
	fmt.Printf("# cost per call here: clock_gettime %.0f ns, rdtsc %.0f ns (%.3f ns/tick), empty Poll %.0f ns\n", nowNs, tscNs, tk.nsPerTick, pollNs)
	pair.tk = tk
	if pair.direct, err = newDirectPair(dev, pair.gidIndex, tk); err != nil {
		return fmt.Errorf("cgo/verbs pair: %w", err)
	}
	defer pair.direct.close()

	if o.sweep {
		type cfg struct{ batch, signalEvery, spins int }
		cfgs := []cfg{{1, 100, 0}, {1, 100, pollSpins}, {32, 32, pollSpins}, {32, 96, pollSpins}}
		for rep := 0; rep < 3; rep++ {
			for _, c := range cfgs {
				r, err := pair.rate(o, c.batch, c.signalEvery, c.spins)
				if err != nil {
					return err
				}
				fmt.Printf("# rate sweep: batch %2d, signal every %2d, spins %2d: %.4f Mpps\n", c.batch, c.signalEvery, c.spins, r.mpps)
			}
			if o.perftest {
				bw := []string{"-d", dev, "-x", strconv.Itoa(pair.gidIndex), "-s", strconv.Itoa(o.sizeBytes), "-n", strconv.Itoa(o.bwIters), "-F", "-p", strconv.Itoa(o.port)}
				if r, err := perftest("ib_write_bw", bw, ip, parseBW, false); err == nil {
					fmt.Printf("# rate sweep: ib_write_bw: %.4f Mpps\n", r.mpps)
				}
			}
		}
	}
	// The environment is noisy (an emulated guest on shared cores), so mu
	// and perftest alternate for several rounds and the table shows the
	// median of each figure over the rounds.
	var rounds []sample
	for r := 1; r <= o.rounds; r++ {
		var sm sample
		// Alternate who goes first, so a drift in the host's load does not
		// favour either side.
		if r%2 == 1 {
			if err := pair.measureMu(o, &sm); err != nil {
				return err
			}
		}
		if o.perftest {
			runPerftest(o, dev, ip, pair.gidIndex, r == 1, &sm)
		}
		if r%2 == 0 {
			if err := pair.measureMu(o, &sm); err != nil {
				return err
			}
		}
		fmt.Printf("# round %d: write p50 mu %.2f / perftest %.2f µs; completion p50 %.2f µs; read p50 mu %.2f / perftest %.2f µs; rate mu %.4f / perftest %.4f Mpps\n",
			r, sm.muPingPong.p50, sm.ptWrite.p50, sm.muCompletion.p50, sm.muRead.p50, sm.ptRead.p50, sm.muRate.mpps, sm.ptBW.mpps)
		rounds = append(rounds, sm)
	}
	med := medians(rounds)
	mu := struct{ pingpong, completion, read, rate result }{med.muPingPong, med.muCompletion, med.muRead, med.muRate}
	pt := struct{ writeLat, readLat, writeBW result }{med.ptWrite, med.ptRead, med.ptBW}

	fmt.Println()
	fmt.Println("| measurement (64 B unless noted) | mu (rdma/verbs) | perftest | ratio mu/perftest | semantics |")
	fmt.Println("|---|---:|---:|---:|---|")
	row := func(name string, m float64, p float64, pOK bool, unit, sem string) {
		ps, ratio := "n/a", "n/a"
		if pOK && p > 0 {
			ps = num(p, unit)
			ratio = fmt.Sprintf("%.2fx", m/p)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", name, num(m, unit), ps, ratio, sem)
	}
	wl, rl := pt.writeLat, pt.readLat
	row("write latency p50", mu.pingpong.p50, wl.p50, wl.ok, "µs", "half round trip of a write ping-pong; perftest: ib_write_lat t_typical")
	row("write latency p99", mu.pingpong.p99, wl.p99, wl.ok, "µs", "same; ib_write_lat 99%")
	row("write latency p99.9", mu.pingpong.p999, wl.p999, wl.ok, "µs", "same; ib_write_lat 99.9%")
	row("signaled write completion p50", mu.completion.p50, 2*wl.p50, wl.ok, "µs", "post to completion (full round trip); perftest: 2 x ib_write_lat t_typical")
	row("signaled write completion p99", mu.completion.p99, 2*wl.p99, wl.ok, "µs", "same; 2 x ib_write_lat 99%")
	row("signaled write completion p99.9", mu.completion.p999, 2*wl.p999, wl.ok, "µs", "same; 2 x ib_write_lat 99.9%")
	row("read latency p50", mu.read.p50, rl.p50, rl.ok, "µs", "post to completion; ib_read_lat t_typical")
	row("read latency p50, cgo/verbs alone", med.directRead.p50, rl.p50, rl.ok, "µs", "same, without the rdma/verbs layer")
	row("signaled write completion p50, cgo/verbs alone", med.directCompletion.p50, 2*wl.p50, wl.ok, "µs", "same as above, without the rdma/verbs layer")
	row("read latency p99", mu.read.p99, rl.p99, rl.ok, "µs", "ib_read_lat 99%")
	row("read latency p99.9", mu.read.p999, rl.p999, rl.ok, "µs", "ib_read_lat 99.9%")
	row("write message rate", mu.rate.mpps, pt.writeBW.mpps, pt.writeBW.ok, "Mpps", "64 B writes in flight up to depth; ib_write_bw MsgRate (higher is better)")
	fmt.Println()
	if wl.ok {
		fmt.Printf("targets: write p50 within 1.15x of perftest: %v (%.2fx); ", verdict(mu.pingpong.p50 <= 1.15*wl.p50), mu.pingpong.p50/wl.p50)
	}
	if pt.writeBW.ok {
		fmt.Printf("message rate >= 0.9x perftest: %v (%.2fx)", verdict(mu.rate.mpps >= 0.9*pt.writeBW.mpps), mu.rate.mpps/pt.writeBW.mpps)
	}
	fmt.Println()
	return nil
}

func num(v float64, unit string) string {
	if unit == "Mpps" {
		return fmt.Sprintf("%.4f %s", v, unit)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

func (pair *pair) measureMu(o options, sm *sample) error {
	var err error
	if sm.muRate, err = pair.rate(o, rateBatch, rateSignalEvery, o.spins); err != nil {
		return fmt.Errorf("message rate: %w", err)
	}
	if sm.muPingPong, err = pair.pingPong(o); err != nil {
		return fmt.Errorf("write ping-pong: %w", err)
	}
	if sm.muCompletion, err = pair.latency(o, rdma.OpWrite); err != nil {
		return fmt.Errorf("write completion: %w", err)
	}
	if sm.muRead, err = pair.latency(o, rdma.OpRead); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if pair.direct != nil {
		if sm.directCompletion, err = pair.direct.latency(o, ibv.OpWrite); err != nil {
			return fmt.Errorf("direct write completion: %w", err)
		}
		if sm.directRead, err = pair.direct.latency(o, ibv.OpRead); err != nil {
			return fmt.Errorf("direct read: %w", err)
		}
	}
	return nil
}

func runPerftest(o options, dev, ip string, gidIndex int, verbose bool, sm *sample) {
	var err error
	gid := strconv.Itoa(gidIndex)
	lat := []string{"-d", dev, "-x", gid, "-s", strconv.Itoa(o.sizeBytes), "-n", strconv.Itoa(o.latIters), "-F", "-p", strconv.Itoa(o.port)}
	bw := []string{"-d", dev, "-x", gid, "-s", strconv.Itoa(o.sizeBytes), "-n", strconv.Itoa(o.bwIters), "-F", "-p", strconv.Itoa(o.port)}
	// Under emulation perftest's CPU-frequency estimate sometimes fails
	// and it prints nothing or 0; run it again then.
	for attempt := 0; attempt < 3 && !sm.ptWrite.ok; attempt++ {
		if sm.ptWrite, err = perftest("ib_write_lat", lat, ip, parseLat, verbose); err != nil {
			fmt.Fprintln(os.Stderr, "ib_write_lat:", err)
		}
	}
	for attempt := 0; attempt < 3 && !sm.ptRead.ok; attempt++ {
		if sm.ptRead, err = perftest("ib_read_lat", lat, ip, parseLat, verbose); err != nil {
			fmt.Fprintln(os.Stderr, "ib_read_lat:", err)
		}
	}
	for attempt := 0; attempt < 3 && !sm.ptBW.ok; attempt++ {
		if sm.ptBW, err = perftest("ib_write_bw", bw, ip, parseBW, verbose); err != nil {
			fmt.Fprintln(os.Stderr, "ib_write_bw:", err)
		}
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// pair is two fabrics on one device, connected through its loopback.
type pair struct {
	a, b     *rverbs.Fabric
	gidIndex int
	tk       ticker
	direct   *directPair
}

type rdmaCompletion = rdma.Completion

func newPair(o options) (*pair, error) {
	mk := func(self, peer rdma.NodeID) (*rverbs.Fabric, error) {
		cfg := rverbs.DefaultConfig()
		cfg.Self, cfg.Peers, cfg.ClusterID = self, []rdma.NodeID{peer}, 0xBE
		cfg.Device, cfg.GIDIndex = o.device, o.gidIndex
		cfg.RegionBytes = 1 << 20
		cfg.MaxInline = uint32(o.inline)
		cfg.MaxRdAtomic = uint8(o.rdAtomic)
		cfg.InitialAccess[rdma.PlaneReplication] |= rdma.AccessRemoteWrite // no permission switch here
		return rverbs.New(cfg)
	}
	a, err := mk(1, 2)
	if err != nil {
		return nil, err
	}
	b, err := mk(2, 1)
	if err != nil {
		a.Close()
		return nil, err
	}
	p := &pair{a: a, b: b}
	ea, err := a.Prepare(2)
	if err == nil {
		var eb []rdma.Endpoint
		if eb, err = b.Prepare(1); err == nil {
			if err = a.Connect(2, eb); err == nil {
				err = b.Connect(1, ea)
			}
		}
	}
	if err != nil {
		p.close()
		return nil, err
	}
	p.gidIndex = gidIndexOf(a, o)
	return p, nil
}

func gidIndexOf(f *rverbs.Fabric, o options) int {
	if o.gidIndex >= 0 {
		return o.gidIndex
	}
	ctx, err := ibv.Open(f.Device())
	if err != nil {
		return 1
	}
	defer ctx.Close()
	idx, _, err := ctx.FindIPv4GID(1)
	if err != nil {
		return 1
	}
	return idx
}

func (p *pair) close() {
	p.a.Close()
	p.b.Close()
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000_000, 3) }

func summarize(h *hdrhistogram.Histogram) result {
	us := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	return result{p50: us(50), p99: us(99), p999: us(99.9), ok: true}
}

// latency times post-to-completion of one signaled op at a time.
func (p *pair) latency(o options, op rdma.Op) (result, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := p.a.Conn(2, rdma.PlaneReplication)
	wr := []rdma.WorkRequest{{Op: op, LocalOffset: 0, RemoteOffset: 4096, Length: uint32(o.sizeBytes)}}
	out := make([]rdma.Completion, 4)
	h := newHist()
	for i := -o.warmup; i < o.latIters; i++ {
		wr[0].ID = uint64(i + o.warmup)
		start := rdtsc()
		if _, err := c.Post(wr); err != nil {
			return result{}, err
		}
		n := 0
		for n == 0 {
			n = p.a.PollSpin(out, o.spins)
		}
		el := p.tk.ns(rdtsc() - start)
		if out[0].Status != rdma.StatusSuccess {
			return result{}, out[0].Status.Err()
		}
		if i >= 0 {
			h.RecordValue(el)
		}
	}
	return summarize(h), nil
}

// pingPong is ib_write_lat's scheme: A writes a message whose last byte is
// the iteration number into B; B busy-polls that byte, then writes back;
// A busy-polls its own copy. Half of each round trip is recorded.
func (p *pair) pingPong(o options) (result, error) {
	const msgOff = 8192
	size := o.sizeBytes
	total := o.warmup + o.latIters
	h := newHist()
	var wg sync.WaitGroup
	var failed atomic.Value
	side := func(f *rverbs.Fabric, peer rdma.NodeID, starts bool) {
		defer wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c := f.Conn(peer, rdma.PlaneReplication)
		mem := f.Region().Bytes()
		in := mem[msgOff+size-1 : msgOff+size] // last byte of the incoming message
		out := make([]rdma.Completion, 16)
		wr := []rdma.WorkRequest{{Op: rdma.OpWrite, LocalOffset: 0, RemoteOffset: msgOff, Length: uint32(size)}}
		var start uint64
		for i := 1; i <= total; i++ {
			tag := byte(i)
			if starts {
				start = rdtsc()
			} else {
				for in[0] != tag {
					if failed.Load() != nil {
						return
					}
				}
			}
			mem[size-1] = tag
			wr[0].ID = uint64(i)
			// Signal every 16th write so the send queue drains.
			wr[0].Unsignaled = i%16 != 0
			for {
				_, err := c.Post(wr)
				if err == nil {
					break
				}
				if !errors.Is(err, rdma.ErrQueueFull) {
					failed.Store(err)
					return
				}
				f.Poll(out)
			}
			// Reap only after a signaled write, as ib_write_lat does: a
			// poll is a crossing into C.
			if i%16 == 0 {
				if n := f.Poll(out); n > 0 {
					for _, cq := range out[:n] {
						if cq.Status != rdma.StatusSuccess {
							failed.Store(cq.Status.Err())
							return
						}
					}
				}
			}
			if starts {
				for in[0] != tag {
					if failed.Load() != nil {
						return
					}
				}
				if i > o.warmup {
					h.RecordValue(p.tk.ns(rdtsc()-start) / 2)
				}
			}
		}
	}
	wg.Add(2)
	go side(p.b, 1, false)
	go side(p.a, 2, true)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return result{}, err
	}
	// Drain the last signaled completions.
	out := make([]rdma.Completion, 64)
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
		p.a.Poll(out)
		p.b.Poll(out)
	}
	return summarize(h), nil
}

// rate keeps 64 B writes in flight up to the queue depth, batch requests
// per Post call (one crossing) with every signalEvery-th signaled, and
// reports millions of writes per second.
func (p *pair) rate(o options, batch, signalEvery, spins int) (result, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := p.a.Conn(2, rdma.PlaneReplication)
	wrs := make([]rdma.WorkRequest, batch)
	for i := range wrs {
		wrs[i] = rdma.WorkRequest{Op: rdma.OpWrite, LocalOffset: uint64(i * 64), RemoteOffset: uint64(65536 + i*64), Length: uint32(o.sizeBytes)}
	}
	out := make([]rdma.Completion, 16)
	total := o.bwIters
	posted, completed := 0, 0
	start := rdtsc()
	for completed < total {
		if posted < total {
			k := min(batch, total-posted)
			for j := range k {
				seq := posted + j
				wrs[j].ID = uint64(seq)
				wrs[j].Unsignaled = (seq+1)%signalEvery != 0 && seq+1 != total
			}
			n, err := c.Post(wrs[:k])
			posted += n
			if err != nil && !errors.Is(err, rdma.ErrQueueFull) {
				return result{}, err
			}
		}
		n := p.a.PollSpin(out, spins)
		for _, cq := range out[:n] {
			if cq.Status != rdma.StatusSuccess {
				return result{}, cq.Status.Err()
			}
			completed = max(completed, int(cq.ID)+1)
		}
	}
	el := p.tk.ns(rdtsc() - start)
	return result{mpps: float64(total) / (float64(el) / 1e9) / 1e6, ok: true}, nil
}

// perftest runs a perftest server and client on this host and parses the
// client's report.
func perftest(name string, args []string, ip string, parse func([]byte) (result, error), verbose bool) (result, error) {
	if _, err := exec.LookPath(name); err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	server := exec.CommandContext(ctx, name, args...)
	var serverOut bytes.Buffer
	server.Stdout, server.Stderr = &serverOut, &serverOut
	if err := server.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		if err := server.Wait(); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "%s server: %v\n%s", name, err, serverOut.String())
		}
	}()
	// The server listens once it has created its resources; retry the
	// client until it connects.
	var out []byte
	var err error
	for attempt := 0; attempt < 40; attempt++ {
		time.Sleep(250 * time.Millisecond)
		client := exec.CommandContext(ctx, name, append(append([]string(nil), args...), ip)...)
		out, err = client.CombinedOutput()
		if err == nil {
			break
		}
		if !bytes.Contains(out, []byte("Couldn't connect")) && !bytes.Contains(out, []byte("Unable to")) {
			break
		}
	}
	if err != nil {
		cancel()
		return result{}, fmt.Errorf("client: %w\n%s", err, out)
	}
	if verbose {
		fmt.Printf("\n# %s %s %s\n%s", name, strings.Join(args, " "), ip, indent(out))
	}
	return parse(out)
}

func indent(b []byte) string {
	var sb strings.Builder
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		sb.WriteString("#   " + l + "\n")
	}
	return sb.String()
}

// dataRow returns the numeric fields of the first line that starts with a
// number under a header containing key.
func dataRow(out []byte, key string) ([]float64, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	header := false
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, key) {
			header = true
			continue
		}
		if !header {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		var vals []float64
		for _, f := range fields {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				vals = nil
				break
			}
			vals = append(vals, v)
		}
		if vals != nil {
			return vals, nil
		}
	}
	return nil, errors.New("no result row under " + key)
}

// parseLat reads ib_*_lat's row: bytes, iterations, t_min, t_max,
// t_typical, t_avg, t_stdev, 99%, 99.9% (µs).
func parseLat(out []byte) (result, error) {
	v, err := dataRow(out, "t_typical")
	if err != nil {
		return result{}, err
	}
	if len(v) < 9 {
		return result{}, fmt.Errorf("latency row has %d fields, want 9", len(v))
	}
	if v[4] <= 0 {
		return result{}, errors.New("t_typical 0: perftest could not calibrate its cycle counter")
	}
	return result{p50: v[4], p99: v[7], p999: v[8], ok: true}, nil
}

// parseBW reads ib_write_bw's row: bytes, iterations, BW peak, BW average
// (MB/s), MsgRate (Mpps).
func parseBW(out []byte) (result, error) {
	v, err := dataRow(out, "MsgRate")
	if err != nil {
		return result{}, err
	}
	if len(v) < 5 {
		return result{}, fmt.Errorf("bandwidth row has %d fields, want 5", len(v))
	}
	if v[4] <= 0 || v[2] <= 0 && v[3] <= 0 {
		return result{}, errors.New("MsgRate 0: perftest could not calibrate its cycle counter")
	}
	return result{mpps: v[4], ok: true}, nil
}

// deviceIP is the IPv4 address in the device's RoCE v2 GID.
func deviceIP(dev string) (string, error) {
	ctx, err := ibv.Open(dev)
	if err != nil {
		return "", err
	}
	defer ctx.Close()
	_, gid, err := ctx.FindIPv4GID(1)
	if err != nil {
		return "", err
	}
	s := gid.String()
	return strings.TrimPrefix(s, "::ffff:"), nil
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown kernel"
	}
	return "Linux " + strings.TrimSpace(string(b))
}
