// Package rsm replicates the order book through mu: StateMachine adapts an
// orderbook.Engine to consensus.StateMachine, so every replica applies the
// same committed commands in the same order and reaches the same book.
package rsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/examples/orderbook"
)

// ResultFunc receives the outcome of each committed command, on the
// applying goroutine, before the next one is applied. r.Trades and cmd are
// only valid during the call. err is nil or one of orderbook's rejections
// (ErrMalformed, ErrDuplicate, ErrUnknownOrder); a rejection is
// deterministic, so every replica reports the same one.
type ResultFunc func(index consensus.Index, cmd []byte, r orderbook.Result, err error)

// StateMachine is an order book driven by mu's log. Apply, Snapshot and
// Restore are called by the replica; Read may be called from any goroutine.
type StateMachine struct {
	mu       sync.Mutex // guards everything below against Read
	engine   *orderbook.Engine
	cfg      orderbook.Config
	onResult ResultFunc
	// lastIndex is the index of the last applied command.
	lastIndex consensus.Index
	rejected  uint64
}

var _ consensus.StateMachine = (*StateMachine)(nil)

// New returns an empty replicated book. onResult may be nil.
func New(cfg orderbook.Config, onResult ResultFunc) *StateMachine {
	return &StateMachine{engine: orderbook.New(cfg), cfg: cfg, onResult: onResult}
}

// Apply applies one committed command. A rejected command (malformed,
// duplicate, unknown order) leaves the book unchanged on every replica; it
// is counted and reported to the ResultFunc, never treated as a fault.
func (s *StateMachine) Apply(index consensus.Index, cmd []byte) {
	s.mu.Lock()
	r, err := s.engine.Apply(cmd)
	s.lastIndex = index
	if err != nil {
		s.rejected++
	}
	if s.onResult != nil {
		s.onResult(index, cmd, r, err)
	}
	s.mu.Unlock()
}

// Snapshot encoding: the last applied index (u64, little-endian) followed by
// the engine's own snapshot, which carries its checksum.
const indexLen = 8

// ErrIndexMismatch: Restore was given a snapshot that includes commands
// after the index it is said to cover; applying the log from index+1 on top
// of it would apply them twice.
var ErrIndexMismatch = errors.New("rsm: snapshot is ahead of its index")

// Snapshot returns the book after the last Apply.
func (s *StateMachine) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf bytes.Buffer
	buf.Write(binary.LittleEndian.AppendUint64(nil, uint64(s.lastIndex)))
	if err := s.engine.Snapshot(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Restore replaces the book with snapshot, which covers every command up to
// and including index. The snapshot records the index of the last command
// it applied; that may be below index, because the log also carries entries
// without commands (a leader's periodic empty entries), but never above. On
// error the book is unchanged.
func (s *StateMachine) Restore(index consensus.Index, snapshot []byte) error {
	if len(snapshot) < indexLen {
		return fmt.Errorf("%w: %d bytes", orderbook.ErrBadSnapshot, len(snapshot))
	}
	if at := consensus.Index(binary.LittleEndian.Uint64(snapshot)); at > index {
		return fmt.Errorf("%w: snapshot has commands up to index %d, restoring as %d", ErrIndexMismatch, at, index)
	}
	fresh := orderbook.New(s.cfg)
	if err := fresh.Restore(bytes.NewReader(snapshot[indexLen:])); err != nil {
		return err
	}
	s.mu.Lock()
	s.engine, s.lastIndex = fresh, index
	s.mu.Unlock()
	return nil
}

// Read runs f with the book while no command is being applied; f must not
// keep the engine or change it.
func (s *StateMachine) Read(f func(e *orderbook.Engine)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.engine)
}

// LastIndex is the index of the last applied command.
func (s *StateMachine) LastIndex() consensus.Index {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastIndex
}

// Rejected is the number of committed commands the book rejected.
func (s *StateMachine) Rejected() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}
