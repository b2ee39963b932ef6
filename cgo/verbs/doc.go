// Package verbs is mu's thin binding to libibverbs, and the only package in
// the module that uses cgo.
//
// It covers what one-sided replication needs and nothing more: device and
// port discovery, protection domains, memory regions over off-heap (mmap)
// memory, completion queues, and reliable-connected queue pairs with their
// state transitions, access-flag changes and RDMA write, read and
// compare-and-swap; and type 2 memory windows (bound to one queue pair by a
// posted bind, revoked by a posted local invalidation or by deallocation).
//
// The hot path crosses into C once per batch: Go fills a caller-owned array
// of compact SendWR or WC structs and C builds or converts the verbs
// structures, so QP.Post and CQ.Poll neither allocate nor let C keep a Go
// pointer.
//
// Every handle has Close; LiveHandles counts the open ones so tests can fail
// on leaks. Without cgo, or off Linux, the package still compiles and every
// call that needs libibverbs returns an error matching ErrNotSupported.
//
// Handles are not safe for concurrent Close: close a handle only when no
// other goroutine uses it. Post on one QP and Poll on its CQ may run on
// different goroutines (libibverbs locks internally).
package verbs
