package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// ErrInvalidConfig is wrapped by every Config.Validate failure.
var ErrInvalidConfig = errors.New("sim: invalid config")

// Latency is a one-way delay distribution: a floor, a uniform jitter above
// it, and a rare exponential tail (rxe's scheduling hiccups).
type Latency struct {
	BaseNs     int64   // floor of every sample
	JitterNs   int64   // uniform extra in [0, JitterNs)
	TailProb   float64 // probability that a sample also gets a tail
	TailMeanNs int64   // mean of the exponential tail
}

func (l Latency) sample(r *rand.Rand) int64 {
	d := l.BaseNs
	if l.JitterNs > 0 {
		d += r.Int64N(l.JitterNs)
	}
	if l.TailProb > 0 && r.Float64() < l.TailProb {
		d += int64(r.ExpFloat64() * float64(l.TailMeanNs))
	}
	return d
}

func (l Latency) validate(field string) error {
	switch {
	case l.BaseNs < 0:
		return fmt.Errorf("%w: %s.BaseNs is %d, must be >= 0", ErrInvalidConfig, field, l.BaseNs)
	case l.JitterNs < 0:
		return fmt.Errorf("%w: %s.JitterNs is %d, must be >= 0", ErrInvalidConfig, field, l.JitterNs)
	case l.TailProb < 0 || l.TailProb > 1 || math.IsNaN(l.TailProb):
		return fmt.Errorf("%w: %s.TailProb is %v, must be in [0,1]", ErrInvalidConfig, field, l.TailProb)
	case l.TailMeanNs < 0:
		return fmt.Errorf("%w: %s.TailMeanNs is %d, must be >= 0", ErrInvalidConfig, field, l.TailMeanNs)
	}
	return nil
}

// Config sets the simulated fabric's timing. DefaultConfig is fitted to rxe
// in the reference VM: a 64-byte signaled write completes in
// about 15 µs round trip (ib_write_lat: 7.45 µs each way), a read in about
// 22 µs (ib_read_lat: 21.7 µs), each leg with a 1% tail of +20 µs mean.
type Config struct {
	// WriteRequest: posting -> the data is in the target's region.
	WriteRequest Latency
	// WriteAck: landing -> the completion is in the initiator's queue.
	WriteAck Latency
	// ReadRequest: posting -> the target's NIC reads its memory. Also used
	// for compare-and-swap.
	ReadRequest Latency
	// ReadResponse: the target's read -> data and completion at the
	// initiator. Also used for compare-and-swap.
	ReadResponse Latency

	// BandwidthBytesPerSec is the serialisation rate of each directed link
	// (shared by both planes); payload bytes queue behind each other.
	BandwidthBytesPerSec int64

	// MTUBytes is the packet payload size. A longer write lands packet by
	// packet in address order (rxe's active MTU in the VM is 1024), so a
	// poller can see it partly written.
	MTUBytes int

	// TransportTimeoutNs is how long an unanswered request is retransmitted
	// before the initiator sees retry exceeded (timeout 14, retry_cnt 7 on
	// rxe: about half a second).
	TransportTimeoutNs int64
	// RetransmitIntervalNs is the gap between retransmissions of a lost or
	// unanswered request; a lossy link adds multiples of it.
	RetransmitIntervalNs int64

	// QueueDepth is the number of outstanding work requests per connection.
	QueueDepth int

	// SetAccessNs is the CPU time SetRemoteAccess costs its caller (the
	// node's clock advances and its next Step is deferred); the flag itself
	// is in effect when the call returns, as with ibv_modify_qp.
	SetAccessNs int64
	// ResetNs is the CPU time of a RESET->INIT->RTR->RTS cycle, charged the
	// same way.
	ResetNs int64

	// Trace records every event in an in-memory log (World.Trace).
	Trace bool
}

// DefaultConfig returns timings fitted to rxe in the reference VM.
func DefaultConfig() Config {
	return Config{
		WriteRequest:         Latency{BaseNs: 6_900, JitterNs: 1_000, TailProb: 0.01, TailMeanNs: 20_000},
		WriteAck:             Latency{BaseNs: 6_900, JitterNs: 1_000, TailProb: 0.01, TailMeanNs: 20_000},
		ReadRequest:          Latency{BaseNs: 6_500, JitterNs: 1_000, TailProb: 0.01, TailMeanNs: 20_000},
		ReadResponse:         Latency{BaseNs: 14_000, JitterNs: 1_500, TailProb: 0.01, TailMeanNs: 20_000},
		BandwidthBytesPerSec: 200 << 20,
		MTUBytes:             1024,
		TransportTimeoutNs:   500_000_000,
		RetransmitIntervalNs: 62_500_000,
		QueueDepth:           256,
		SetAccessNs:          80_000,
		ResetNs:              540_000,
	}
}

// Validate checks every field and names the first one that is wrong.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		l    Latency
	}{{"WriteRequest", c.WriteRequest}, {"WriteAck", c.WriteAck}, {"ReadRequest", c.ReadRequest}, {"ReadResponse", c.ReadResponse}} {
		if err := f.l.validate(f.name); err != nil {
			return err
		}
	}
	switch {
	case c.BandwidthBytesPerSec <= 0:
		return fmt.Errorf("%w: BandwidthBytesPerSec is %d, must be > 0", ErrInvalidConfig, c.BandwidthBytesPerSec)
	case c.MTUBytes < 256 || c.MTUBytes > 4096:
		return fmt.Errorf("%w: MTUBytes is %d, must be in [256, 4096]", ErrInvalidConfig, c.MTUBytes)
	case c.TransportTimeoutNs <= 0:
		return fmt.Errorf("%w: TransportTimeoutNs is %d, must be > 0", ErrInvalidConfig, c.TransportTimeoutNs)
	case c.RetransmitIntervalNs <= 0:
		return fmt.Errorf("%w: RetransmitIntervalNs is %d, must be > 0", ErrInvalidConfig, c.RetransmitIntervalNs)
	case c.RetransmitIntervalNs > c.TransportTimeoutNs:
		return fmt.Errorf("%w: RetransmitIntervalNs (%d) exceeds TransportTimeoutNs (%d)", ErrInvalidConfig, c.RetransmitIntervalNs, c.TransportTimeoutNs)
	case c.QueueDepth <= 0 || c.QueueDepth > 1<<16:
		return fmt.Errorf("%w: QueueDepth is %d, must be in [1, 65536]", ErrInvalidConfig, c.QueueDepth)
	case c.SetAccessNs < 0:
		return fmt.Errorf("%w: SetAccessNs is %d, must be >= 0", ErrInvalidConfig, c.SetAccessNs)
	case c.ResetNs < 0:
		return fmt.Errorf("%w: ResetNs is %d, must be >= 0", ErrInvalidConfig, c.ResetNs)
	}
	return nil
}

// WithTransportTimeout returns c with the transport timeout set and the
// retransmit interval scaled to an eighth of it (retry_cnt 7 plus the first
// try), the usual shortening for tests.
func (c Config) WithTransportTimeout(ns int64) Config {
	c.TransportTimeoutNs = ns
	c.RetransmitIntervalNs = max(ns/8, 1)
	return c
}
