package wal

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	dsyncFlag  = unix.O_DSYNC
	directFlag = unix.O_DIRECT
)

// preallocate reserves [off, off+n) so appends never allocate blocks or
// hit a full disk mid-record; zeros, or a filesystem without fallocate,
// writes zeros instead.
func preallocate(f *os.File, off, n int64, zeros bool) error {
	if !zeros {
		err := unix.Fallocate(int(f.Fd()), 0, off, n)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			return err
		}
	}
	return writeZeros(f, off, n)
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

func isInvalidArg(err error) bool { return errors.Is(err, unix.EINVAL) }

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
