package consensus

import (
	"context"
	"fmt"
)

// waiter ties a drained proposal to the index it was written at.
type waiter struct {
	index uint64
	cell  int32
}

// Propose replicates data and blocks until it is committed and applied on
// this replica (the leader), or ctx ends. It copies data; nothing is
// allocated per call on success. A replica that is not the leader returns a
// *NotLeaderError (errors.Is(err, ErrNotLeader)).
func (r *Replica) Propose(ctx context.Context, data []byte) (Index, error) {
	idx, _, err := r.propose(ctx, data, nil, false)
	return idx, err
}

// ProposeResult is Propose that also returns the state machine's result
// for the command (see ResultApplier for when one is delivered), appended
// to out[:0]: with enough capacity in out nothing is allocated. Without a
// ResultApplier the result is empty.
func (r *Replica) ProposeResult(ctx context.Context, data, out []byte) (Index, []byte, error) {
	return r.propose(ctx, data, out, true)
}

func (r *Replica) propose(ctx context.Context, data, out []byte, wantResult bool) (Index, []byte, error) {
	if err := r.checkProposal(data); err != nil {
		return 0, nil, err
	}
	id, err := r.ring.claim(data, 0, true)
	if err != nil {
		return 0, nil, err
	}
	c := &r.ring.cells[id]
	select {
	case res := <-c.done:
		if wantResult && res.err == nil {
			out = append(out[:0], c.result...)
		} else {
			out = nil
		}
		r.ring.mu.Lock()
		r.ring.release(id)
		r.ring.mu.Unlock()
		return res.index, out, res.err
	case <-ctx.Done():
		r.ring.mu.Lock()
		select {
		case <-c.done: // delivered meanwhile: the cell is ours to free
			r.ring.release(id)
		default:
			c.wait = false // the deliverer frees it
		}
		r.ring.mu.Unlock()
		return 0, nil, ctx.Err()
	}
}

// Submit queues data without blocking and copies it. The outcome (the
// index on commit, or an error) goes to the handler set with
// SetResultHandler, with token, from a later Step. This is the form for
// callers on the driving goroutine, such as the simulator.
func (r *Replica) Submit(data []byte, token uint64) error {
	if err := r.checkProposal(data); err != nil {
		return err
	}
	_, err := r.ring.claim(data, token, false)
	return err
}

// ResultFunc receives the outcome of a Submit: the index on commit, or an
// error (ErrNotLeader, ErrLeadershipLost, ErrFenced).
type ResultFunc func(token uint64, index Index, err error)

// SetResultHandler sets where Submit outcomes go. Call before stepping.
func (r *Replica) SetResultHandler(fn ResultFunc) { r.onResult = fn }

func (r *Replica) checkProposal(data []byte) error {
	if r.closing.Load() {
		return ErrClosed
	}
	if max := r.cfg.MaxProposalBytes(); len(data) > max {
		return fmt.Errorf("%w: %d bytes, MaxProposalBytes is %d", ErrTooLarge, len(data), max)
	}
	return r.servingErr()
}

// deliver reports a result for a drained cell and frees it as its protocol
// requires (see submission).
func (r *Replica) deliver(id int32, index uint64, err error) {
	ring := r.ring
	ring.mu.Lock()
	c := &ring.cells[id]
	if c.wait {
		c.done <- proposalResult{index: Index(index), err: err}
		ring.mu.Unlock()
		return
	}
	token := c.token
	ring.release(id)
	ring.mu.Unlock()
	if r.onResult != nil {
		r.onResult(token, Index(index), err)
	}
}

// rejectQueued fails proposals that reached a replica that does not lead.
func (r *Replica) rejectQueued() {
	ring := r.ring
	for {
		ring.mu.Lock()
		id, ok := ring.peek()
		if ok {
			ring.pop()
		}
		ring.mu.Unlock()
		if !ok {
			return
		}
		var err error = ErrFenced
		if !r.fenced {
			l, known := r.Leader()
			err = &NotLeaderError{Leader: l, Known: known}
		}
		r.deliver(id, 0, err)
	}
}

// servingErr is why this replica cannot take a client's proposal or read
// now (fenced, or not the leader: naming the one it knows), or nil.
func (r *Replica) servingErr() error {
	if r.fencedA.Load() {
		return ErrFenced
	}
	if !r.isLeader.Load() {
		l, ok := r.Leader()
		return &NotLeaderError{Leader: l, Known: ok}
	}
	return nil
}
