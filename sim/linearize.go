package sim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/anishathalye/porcupine"
)

// Linearizability checking over virtual time, with porcupine as the oracle.

var (
	// ErrNotLinearizable: no legal order of the history exists.
	ErrNotLinearizable = errors.New("sim: history is not linearizable")
	// ErrCheckTimeout: the checker gave up before deciding.
	ErrCheckTimeout = errors.New("sim: linearizability check timed out")
)

// History records client operations with call and return times from the
// virtual clock. An operation that never returns (its client gave up, or
// the run ended) is checked with an unknown outcome: it returns at +inf with
// a nil output, so the model's Step must accept a nil output as "any".
type History struct {
	ops      []porcupine.Operation
	returned []bool
}

// Invoke records the call of an operation and returns its handle.
func (h *History) Invoke(client int, input any, nowNs int64) int {
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: input, Call: nowNs, Return: math.MaxInt64})
	h.returned = append(h.returned, false)
	return len(h.ops) - 1
}

// Return records the outcome of the operation with handle op.
func (h *History) Return(op int, output any, nowNs int64) {
	if h.returned[op] {
		panic(fmt.Sprintf("sim: operation %d returned twice", op))
	}
	if nowNs < h.ops[op].Call {
		panic(fmt.Sprintf("sim: operation %d returns at %d before its call at %d", op, nowNs, h.ops[op].Call))
	}
	h.ops[op].Output = output
	h.ops[op].Return = nowNs
	h.returned[op] = true
}

// Len is the number of recorded operations.
func (h *History) Len() int { return len(h.ops) }

// Pending is the number of operations that have not returned.
func (h *History) Pending() int {
	n := 0
	for _, r := range h.returned {
		if !r {
			n++
		}
	}
	return n
}

// Check decides whether the history is linearizable under m. On
// ErrNotLinearizable, if vizPath is not empty, porcupine's visualisation is
// written there and the error names the file.
func (h *History) Check(m porcupine.Model, timeout time.Duration, vizPath string) error {
	res, info := porcupine.CheckOperationsVerbose(m, h.ops, timeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Illegal:
		if vizPath == "" {
			return fmt.Errorf("%w (%d operations)", ErrNotLinearizable, len(h.ops))
		}
		if err := porcupine.VisualizePath(m, info, vizPath); err != nil {
			return fmt.Errorf("%w (%d operations; visualisation failed: %v)", ErrNotLinearizable, len(h.ops), err)
		}
		return fmt.Errorf("%w (%d operations; visualisation in %s)", ErrNotLinearizable, len(h.ops), vizPath)
	}
	return fmt.Errorf("%w after %v (%d operations)", ErrCheckTimeout, timeout, len(h.ops))
}
