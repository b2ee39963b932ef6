//go:build !linux

package wal

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// Without Linux there is no O_DIRECT here; O_SYNC stands in for O_DSYNC.
const (
	dsyncFlag  = os.O_SYNC
	directFlag = 0
)

func preallocate(f *os.File, off, n int64, _ bool) error { return writeZeros(f, off, n) }

func fdatasync(f *os.File) error { return f.Sync() }

func isInvalidArg(err error) bool { return errors.Is(err, syscall.EINVAL) }

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
