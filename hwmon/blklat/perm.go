package blklat

import (
	"errors"

	"golang.org/x/sys/unix"
)

func isPerm(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

func isMissingTracepoint(err error) bool {
	return errors.Is(err, unix.ENOENT)
}
