package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/rdmaconsensus/mu/rdma"
)

// A simulated disk holding one node's journal, with TigerBeetle's storage
// fault model as the reference: what was written but not synced is lost
// on power loss, a write in flight at power loss may be torn, a durable
// record may later read back bad (a latent sector error or bit rot), the
// disk may turn slow, and it may fill up. Records are the unit: a record
// survives whole, is lost, or is damaged, which is what a checksummed
// write-ahead log (package wal) reduces byte-level faults to.
//
// It satisfies consensus.Storage. Its flushes are group commits: one
// flush takes every record appended before it started and completes after
// a latency drawn from DiskConfig.Sync; the records then count as durable
// and the node is stepped.

// ErrDiskFull is the error of an Append that does not fit.
var ErrDiskFull = errors.New("sim: disk full")

// DiskConfig sets a simulated disk's timing and size.
type DiskConfig struct {
	// Sync is the time of one flush: the write and the fdatasync of a
	// group of records.
	Sync Latency
	// CapacityBytes bounds the bytes of records held; 0 is unlimited.
	CapacityBytes int64
}

// DefaultDiskConfig is an NVMe drive with power-loss protection: a flush
// of about 20 µs, with a 1% tail of 200 µs mean.
func DefaultDiskConfig() DiskConfig {
	return DiskConfig{Sync: Latency{BaseNs: 15_000, JitterNs: 10_000, TailProb: 0.01, TailMeanNs: 200_000}}
}

// DiskError is a record the disk cannot give back whole: a torn write
// with a later record intact (a hole), a latent sector error, bit rot.
type DiskError struct {
	Record int // 1-based position in the journal
	Reason string
}

func (e *DiskError) Error() string { return fmt.Sprintf("sim: disk record %d: %s", e.Record, e.Reason) }

// JournalDamaged marks the journal as holding what it cannot prove.
func (e *DiskError) JournalDamaged() bool { return true }

// Disk is one node's simulated disk. Like a Node, it is used only from
// the world's goroutine.
type Disk struct {
	w    *World
	node *Node
	cfg  DiskConfig
	rng  *rand.Rand

	durable  [][]byte
	written  [][]byte // appended, not yet durable (the page cache)
	inflight int      // written[:inflight] are in the current flush
	gen      uint64   // bumps to cancel the flush in flight
	flushAt  int64    // when the flush in flight started
	doneAt   int64    // and when it completes
	bytes    int64
	slow     float64
	err      error
	bad      map[int]string // durable record (0-based) -> why it reads back bad

	// Flushes and FlushNs count completed flushes and their total time.
	Flushes uint64
	FlushNs int64
}

// NewDisk gives node id a disk. Its randomness (latency, the fate of a
// torn group) is a stream of the world's seed of its own.
func NewDisk(w *World, id rdma.NodeID, cfg DiskConfig) *Disk {
	if err := cfg.Sync.validate("Sync"); err != nil {
		panic(err)
	}
	return &Disk{w: w, node: w.mustNode(id), cfg: cfg, rng: w.Rand(0xd15c0000 + uint64(id)), slow: 1, bad: map[int]string{}}
}

// Append adds rec (copied) and returns its sequence number; it never waits.
func (d *Disk) Append(rec []byte) (uint64, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.cfg.CapacityBytes > 0 && d.bytes+int64(len(rec)) > d.cfg.CapacityBytes {
		d.err = fmt.Errorf("%w: %d of %d bytes used, record of %d", ErrDiskFull, d.bytes, d.cfg.CapacityBytes, len(rec))
		return 0, d.err
	}
	d.bytes += int64(len(rec))
	d.written = append(d.written, append([]byte(nil), rec...))
	if d.inflight == 0 {
		d.startFlush()
	}
	return uint64(len(d.durable) + len(d.written)), nil
}

// Durable is the sequence number of the last durable record.
func (d *Disk) Durable() (uint64, error) { return uint64(len(d.durable)), d.err }

// Load replays the durable records in order and stops at the first that
// reads back bad, with a *DiskError.
func (d *Disk) Load(fn func(rec []byte) error) error {
	for i, rec := range d.durable {
		if why, ok := d.bad[i]; ok {
			return &DiskError{Record: i + 1, Reason: why}
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// Reset discards every record (a replica that found its journal damaged
// starts a new one).
func (d *Disk) Reset() error {
	d.gen++
	d.durable, d.written, d.inflight, d.bytes = nil, nil, 0, 0
	d.bad = map[int]string{}
	d.err = nil
	return nil
}

// Records is the number of durable records.
func (d *Disk) Records() int { return len(d.durable) }

func (d *Disk) startFlush() {
	d.inflight = len(d.written)
	lat := int64(float64(d.cfg.Sync.sample(d.rng)) * d.slow)
	d.flushAt = d.w.now
	d.scheduleFlush(d.w.now + max(lat, 1))
}

// scheduleFlush completes the flush in flight at doneAt.
func (d *Disk) scheduleFlush(doneAt int64) {
	d.gen++
	gen, start := d.gen, d.flushAt
	d.doneAt = doneAt
	d.w.Schedule(doneAt, func() {
		if d.gen != gen {
			return
		}
		d.durable = append(d.durable, d.written[:d.inflight]...)
		d.written = append(d.written[:0], d.written[d.inflight:]...)
		d.inflight = 0
		d.Flushes++
		d.FlushNs += d.w.now - start
		if len(d.written) > 0 {
			d.startFlush()
		}
		if !d.node.crashed {
			d.w.wake(d.node, d.w.now)
		}
	})
}

// ProcessCrash is the process dying while the machine stays up: what it
// wrote is in the page cache, which the kernel writes back.
func (d *Disk) ProcessCrash() {
	d.gen++
	d.durable = append(d.durable, d.written...)
	d.written, d.inflight = nil, 0
}

// PowerLoss is the machine losing power: what was written and not synced
// is lost. A group in flight loses a random tail of its records; with
// tear, the record at the cut is torn while a later one of the group
// landed, which leaves a hole the next Load reports. It returns what
// happened, for failure reports.
func (d *Disk) PowerLoss(tear bool) string {
	d.gen++
	k := d.inflight
	lost := len(d.written)
	what := fmt.Sprintf("%d unsynced records lost", lost)
	if k > 0 {
		keep := d.rng.IntN(k + 1)
		d.durable = append(d.durable, d.written[:keep]...)
		lost -= keep
		what = fmt.Sprintf("%d of a %d-record group in flight kept, %d records lost", keep, k, lost)
		if tear && k-keep >= 2 {
			// The record at the cut is torn and a later one landed.
			d.bad[len(d.durable)] = "torn write"
			d.durable = append(d.durable, d.written[keep], d.written[keep+1+d.rng.IntN(k-keep-1)])
			what += ", torn with a later record landed"
		}
	}
	d.written, d.inflight = nil, 0
	d.bytes = 0
	for _, r := range d.durable {
		d.bytes += int64(len(r))
	}
	return what
}

// Rot makes a random durable record read back bad from now on (a latent
// sector error, or bit rot the checksum catches), and returns which, or 0
// when there is none.
func (d *Disk) Rot() int {
	if len(d.durable) == 0 {
		return 0
	}
	i := d.rng.IntN(len(d.durable))
	d.bad[i] = "latent sector error"
	return i + 1
}

// SetSlow multiplies flush latency by factor (a fail-slow disk); 1 is
// normal. The rest of a flush in flight is scaled too.
func (d *Disk) SetSlow(factor float64) {
	if factor < 1 {
		panic(fmt.Sprintf("sim: Disk.SetSlow(%v): factor must be >= 1", factor))
	}
	if d.inflight > 0 && factor != d.slow {
		left := float64(d.doneAt-d.w.now) * factor / d.slow
		d.scheduleFlush(d.w.now + max(int64(left), 1))
	}
	d.slow = factor
}

// Fill makes the disk full: the next Append fails with ErrDiskFull.
func (d *Disk) Fill() { d.cfg.CapacityBytes = max(d.bytes, 1) }

// Free gives the disk back the capacity it was configured with and clears
// a full-disk error (an operator made room).
func (d *Disk) Free(capacityBytes int64) {
	d.cfg.CapacityBytes = capacityBytes
	if errors.Is(d.err, ErrDiskFull) {
		d.err = nil
	}
}
