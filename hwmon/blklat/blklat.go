// Package blklat measures block I/O completion latency per device with two
// eBPF raw tracepoint programs (block_rq_issue, block_rq_complete), so
// tracefs need not be mounted. The programs are assembled here with
// cilium/ebpf's asm package: no C toolchain, no prebuilt ELF objects. The
// offsets of request.part and block_device.bd_dev come from the running
// kernel's BTF, read at load time.
//
// Where the kernel refuses (no CAP_BPF/CAP_PERFMON, no BTF, a kernel
// without these tracepoints), Open returns an error wrapping
// ErrUnavailable that says which.
package blklat

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// ErrUnavailable wraps every reason the tracer cannot run here.
var ErrUnavailable = errors.New("ebpf block latency unavailable")

// Buckets is the histogram width: bucket i counts I/Os whose latency is in
// [2^i, 2^(i+1)) microseconds; bucket 0 also holds latencies below 1 µs.
const Buckets = 32

// SumSlot is the map slot holding a device's total latency in nanoseconds.
const SumSlot = Buckets

// Dev is a kernel-internal dev_t (major in the top 12 bits, minor in the low 20).
type Dev uint32

// Major and Minor decode the kernel's internal encoding (MINORBITS = 20).
func (d Dev) Major() uint32 { return uint32(d) >> 20 }
func (d Dev) Minor() uint32 { return uint32(d) & (1<<20 - 1) }

// Tracer owns the maps, programs and links; Close releases them.
type Tracer struct {
	start, hist *ebpf.Map
	progs       []*ebpf.Program
	links       []link.Link
}

type histKey struct {
	Dev  uint32
	Slot uint32
}

// Offsets are byte offsets the program needs, found in kernel BTF.
type Offsets struct {
	RequestPart    uint32 // offsetof(struct request, part)
	BlockDeviceDev uint32 // offsetof(struct block_device, bd_dev)
}

// KernelOffsets reads the offsets from the running kernel's BTF.
func KernelOffsets() (Offsets, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return Offsets{}, fmt.Errorf("%w: no kernel BTF (%v)", ErrUnavailable, err)
	}
	var o Offsets
	if o.RequestPart, err = memberOffset(spec, "request", "part", "block_device"); err != nil {
		return o, err
	}
	if o.BlockDeviceDev, err = memberOffset(spec, "block_device", "bd_dev", ""); err != nil {
		return o, err
	}
	return o, nil
}

// memberOffset finds a member (descending into anonymous structs and
// unions) and, if pointsTo is set, checks it points to that struct: older
// kernels had request.part as a struct hd_struct *, which has no bd_dev.
func memberOffset(spec *btf.Spec, structName, member, pointsTo string) (uint32, error) {
	var s *btf.Struct
	if err := spec.TypeByName(structName, &s); err != nil {
		return 0, fmt.Errorf("%w: kernel BTF has no struct %s: %v", ErrUnavailable, structName, err)
	}
	m, off, ok := findMember(s.Members, member, 0)
	if !ok {
		return 0, fmt.Errorf("%w: struct %s has no member %s in this kernel", ErrUnavailable, structName, member)
	}
	if off%8 != 0 {
		return 0, fmt.Errorf("%w: %s.%s is a bitfield", ErrUnavailable, structName, member)
	}
	if pointsTo != "" {
		p, isPtr := btf.UnderlyingType(m.Type).(*btf.Pointer)
		var target *btf.Struct
		if isPtr {
			target, _ = btf.UnderlyingType(p.Target).(*btf.Struct)
		}
		if target == nil || target.Name != pointsTo {
			return 0, fmt.Errorf("%w: %s.%s is %v, not struct %s * (kernel older than 5.12?)", ErrUnavailable, structName, member, m.Type, pointsTo)
		}
	}
	return uint32(off / 8), nil
}

func findMember(ms []btf.Member, name string, base btf.Bits) (btf.Member, btf.Bits, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, base + m.Offset, true
		}
		if m.Name != "" {
			continue
		}
		var inner []btf.Member
		switch t := btf.UnderlyingType(m.Type).(type) {
		case *btf.Struct:
			inner = t.Members
		case *btf.Union:
			inner = t.Members
		}
		if found, off, ok := findMember(inner, name, base+m.Offset); ok {
			return found, off, true
		}
	}
	return btf.Member{}, 0, false
}

// Open loads and attaches the programs.
func Open() (*Tracer, error) {
	off, err := KernelOffsets()
	if err != nil {
		return nil, err
	}
	t := &Tracer{}
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()
	t.start, err = ebpf.NewMap(&ebpf.MapSpec{Name: "mu_blk_start", Type: ebpf.LRUHash, KeySize: 8, ValueSize: 8, MaxEntries: 16384})
	if err != nil {
		return nil, refused("creating the in-flight map", err)
	}
	t.hist, err = ebpf.NewMap(&ebpf.MapSpec{Name: "mu_blk_hist", Type: ebpf.Hash, KeySize: 8, ValueSize: 8, MaxEntries: 4096})
	if err != nil {
		return nil, refused("creating the histogram map", err)
	}
	for _, p := range []struct {
		tp    string
		insns asm.Instructions
	}{
		{"block_rq_issue", issueProgram(t.start)},
		{"block_rq_complete", completeProgram(t.start, t.hist, off)},
	} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "mu_" + p.tp[6:], Type: ebpf.RawTracepoint, License: "GPL", Instructions: p.insns})
		if err != nil {
			return nil, refused("loading the "+p.tp+" program", err)
		}
		t.progs = append(t.progs, prog)
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: p.tp, Program: prog})
		if err != nil {
			return nil, refused("attaching to raw tracepoint "+p.tp, err)
		}
		t.links = append(t.links, l)
	}
	ok = true
	return t, nil
}

// refused classifies a kernel error: permission and missing support wrap
// ErrUnavailable (the environment says no); anything else, such as a
// verifier rejection, is a defect in this package and is returned plainly.
func refused(what string, err error) error {
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w: %s: %v (not supported by this kernel)", ErrUnavailable, what, err)
	case isPerm(err):
		return fmt.Errorf("%w: %s: %v (needs CAP_BPF and CAP_PERFMON, or root; unprivileged BPF is disabled)", ErrUnavailable, what, err)
	case isMissingTracepoint(err):
		return fmt.Errorf("%w: %s: %v (this kernel has no such tracepoint)", ErrUnavailable, what, err)
	}
	return fmt.Errorf("blklat: %s: %w", what, err)
}

// issueProgram: start[rq] = bpf_ktime_get_ns().
func issueProgram(start *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, 0, asm.DWord), // args[0] = struct request *
		asm.StoreMem(asm.RFP, -8, asm.R6, asm.DWord),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, -16, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, start.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
}

// completeProgram: delta = now - start[rq]; delete start[rq];
// hist[{rq->part->bd_dev, log2(delta_us)}] += 1.
func completeProgram(start, hist *ebpf.Map, off Offsets) asm.Instructions {
	insns := asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, 0, asm.DWord),
		asm.StoreMem(asm.RFP, -8, asm.R6, asm.DWord),
		asm.LoadMapPtr(asm.R1, start.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"), // issued before we attached
		asm.LoadMem(asm.R7, asm.R0, 0, asm.DWord),
		asm.FnKtimeGetNs.Call(),
		asm.Sub.Reg(asm.R0, asm.R7),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.LoadMapPtr(asm.R1, start.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapDeleteElem.Call(),

		// r9 = rq->part->bd_dev, 0 if unreadable
		asm.Mov.Imm(asm.R9, 0),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, -24),
		asm.Mov.Imm(asm.R2, 8),
		asm.Mov.Reg(asm.R3, asm.R6),
		asm.Add.Imm(asm.R3, int32(off.RequestPart)),
		asm.FnProbeReadKernel.Call(),
		asm.LoadMem(asm.R3, asm.RFP, -24, asm.DWord),
		asm.JEq.Imm(asm.R3, 0, "slot"),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, -32),
		asm.Mov.Imm(asm.R2, 4),
		asm.Add.Imm(asm.R3, int32(off.BlockDeviceDev)),
		asm.FnProbeReadKernel.Call(),
		asm.LoadMem(asm.R9, asm.RFP, -32, asm.Word),

		// r6 = delta_ns (rq is no longer needed); r7 = floor(log2(delta_us)),
		// delta_us clamped to 32 bits
		asm.Mov.Reg(asm.R6, asm.R8).WithSymbol("slot"),
		asm.Div.Imm(asm.R8, 1000),
		asm.LoadImm(asm.R1, 0xffffffff, asm.DWord),
		asm.JLE.Reg(asm.R8, asm.R1, "log2"),
		asm.Mov.Reg(asm.R8, asm.R1),
		asm.Mov.Imm(asm.R7, 0).WithSymbol("log2"),
	}
	for _, step := range []int32{16, 8, 4, 2, 1} {
		skip := fmt.Sprintf("skip%d", step)
		insns = append(insns,
			asm.JLE.Imm(asm.R8, int32(1)<<step-1, skip),
			asm.RSh.Imm(asm.R8, step),
			asm.Add.Imm(asm.R7, step),
			asm.Mov.Imm(asm.R0, 0).WithSymbol(skip), // landing pad
		)
	}
	insns = append(insns,
		asm.StoreMem(asm.RFP, -40, asm.R9, asm.Word),
		asm.StoreMem(asm.RFP, -36, asm.R7, asm.Word),
		asm.Mov.Imm(asm.R7, 1),
	)
	insns = append(insns, addToKey(hist, "count_", asm.R7, "sum")...)
	insns = append(insns,
		asm.Mov.Imm(asm.R1, SumSlot).WithSymbol("sum"),
		asm.StoreMem(asm.RFP, -36, asm.R1, asm.Word),
	)
	insns = append(insns, addToKey(hist, "sum_", asm.R6, "exit")...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	)
	return insns
}

// addToKey adds register val (callee-saved) to hist[key at fp-40],
// inserting the key if absent, then jumps to done. Labels get prefix p.
func addToKey(hist *ebpf.Map, p string, val asm.Register, done string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, hist.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -40),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, p+"insert"),
		asm.StoreXAdd(asm.R0, val, asm.DWord).WithSymbol(p + "add"),
		asm.Ja.Label(done),

		asm.StoreMem(asm.RFP, -48, val, asm.DWord).WithSymbol(p + "insert"),
		asm.LoadMapPtr(asm.R1, hist.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -40),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -48),
		asm.Mov.Imm(asm.R4, 1), // BPF_NOEXIST
		asm.FnMapUpdateElem.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
		// another CPU inserted the key first: add to its entry
		asm.LoadMapPtr(asm.R1, hist.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -40),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, p+"add"),
		asm.Ja.Label(done),
	}
}

// Histogram is one device's cumulative latency histogram.
type Histogram struct {
	Buckets [Buckets]uint64
	SumNs   uint64 // total latency of the I/Os counted in Buckets
}

// Read returns the cumulative histogram of every device seen so far.
func (t *Tracer) Read() (map[Dev]Histogram, error) {
	out := map[Dev]Histogram{}
	var k histKey
	var v uint64
	it := t.hist.Iterate()
	for it.Next(&k, &v) {
		h := out[Dev(k.Dev)]
		switch {
		case k.Slot < Buckets:
			h.Buckets[k.Slot] = v
		case k.Slot == SumSlot:
			h.SumNs = v
		default:
			continue
		}
		out[Dev(k.Dev)] = h
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the histogram map: %w", err)
	}
	return out, nil
}

// Close detaches the programs and frees the maps.
func (t *Tracer) Close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	for _, p := range t.progs {
		errs = append(errs, p.Close())
	}
	for _, m := range []*ebpf.Map{t.start, t.hist} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	t.links, t.progs, t.start, t.hist = nil, nil, nil, nil
	return errors.Join(errs...)
}
