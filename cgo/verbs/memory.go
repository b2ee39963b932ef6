package verbs

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Memory is page-aligned anonymous memory outside the Go heap, suitable for
// registration: the garbage collector never moves or scans it, and C may keep
// its address.
type Memory struct {
	buf    []byte
	closed bool
	// regs counts open MRs over this memory; Close refuses while > 0.
	regs atomic.Int32
}

// AllocMemory maps lengthBytes of zeroed memory, rounded up to whole pages.
func AllocMemory(lengthBytes int) (*Memory, error) {
	if lengthBytes <= 0 {
		return nil, fmt.Errorf("%w: AllocMemory length %d: want > 0", ErrInvalid, lengthBytes)
	}
	buf, err := mmapAnon(lengthBytes)
	if err != nil {
		return nil, err
	}
	handleOpened()
	return &Memory{buf: buf}, nil
}

// Bytes is the mapped memory; valid until Close.
func (m *Memory) Bytes() []byte { return m.buf }

// Addr is the virtual address of the first byte.
func (m *Memory) Addr() uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(m.buf)))) }

// Len is the mapped length in bytes.
func (m *Memory) Len() int { return len(m.buf) }

// Close unmaps the memory. It fails with ErrBusy while an MR covers it.
func (m *Memory) Close() error {
	if m.closed {
		return nil
	}
	if m.regs.Load() > 0 {
		return fmt.Errorf("verbs: close memory: %w (%d registrations)", ErrBusy, m.regs.Load())
	}
	if err := munmap(m.buf); err != nil {
		return err
	}
	m.closed, m.buf = true, nil
	handleClosed()
	return nil
}
