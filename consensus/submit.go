package consensus

import (
	"sync"
)

// proposalResult is delivered to a blocking Propose.
type proposalResult struct {
	index Index
	err   error
}

// submission is one preallocated proposal cell. A cell is owned by the ring
// from claim until its result is delivered, even if the proposer gave up, so
// a late result never reaches the next user of the cell.
type submission struct {
	buf   []byte
	n     int
	token uint64              // for Submit: passed back to Config.OnResult
	done  chan proposalResult // for Propose: buffered 1
	gen   uint64              // bumps on every claim
	wait  bool                // a Propose is (or was) waiting on done
	// result is what ResultApplier returned for this command: written
	// by the driver before done is sent, read by the proposer after.
	result []byte
}

// submitRing is the thread-safe path from proposers to the driver: proposers
// copy their payload into a free cell; Step drains cells in FIFO order into
// log slots. Nothing is allocated after construction.
type submitRing struct {
	mu      sync.Mutex
	cells   []submission
	free    []int32 // stack of free cells
	queue   []int32 // FIFO of cells waiting to be drained
	qHead   int
	qLen    int
	stopErr error // non-nil once the driver stopped: why claims fail
}

func newSubmitRing(n, maxBytes int) *submitRing {
	r := &submitRing{
		cells: make([]submission, n),
		free:  make([]int32, n),
		queue: make([]int32, n),
	}
	for i := range r.cells {
		r.cells[i].buf = make([]byte, maxBytes)
		r.cells[i].done = make(chan proposalResult, 1)
		r.free[i] = int32(n - 1 - i)
	}
	return r
}

// claim copies data into a free cell and queues it. It returns the cell id.
func (r *submitRing) claim(data []byte, token uint64, wait bool) (int32, error) {
	r.mu.Lock()
	if r.stopErr != nil {
		err := r.stopErr
		r.mu.Unlock()
		return -1, err
	}
	if len(r.free) == 0 {
		r.mu.Unlock()
		return -1, ErrQueueFull
	}
	id := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	c := &r.cells[id]
	c.n = copy(c.buf, data)
	c.token = token
	c.wait = wait
	c.result = c.result[:0] // never a previous command's result
	c.gen++
	r.queue[(r.qHead+r.qLen)%len(r.queue)] = id
	r.qLen++
	r.mu.Unlock()
	return id, nil
}

// peek returns the next queued cell without removing it.
func (r *submitRing) peek() (int32, bool) {
	if r.qLen == 0 {
		return -1, false
	}
	return r.queue[r.qHead], true
}

func (r *submitRing) pop() {
	r.qHead = (r.qHead + 1) % len(r.queue)
	r.qLen--
}

// release returns a cell to the free stack (under r.mu).
func (r *submitRing) release(id int32) { r.free = append(r.free, id) }
