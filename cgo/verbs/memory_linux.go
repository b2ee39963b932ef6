package verbs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func mmapAnon(lengthBytes int) ([]byte, error) {
	page := os.Getpagesize()
	n := (lengthBytes + page - 1) / page * page
	buf, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("verbs: mmap %d bytes: %w", n, err)
	}
	return buf, nil
}

func munmap(buf []byte) error {
	if err := unix.Munmap(buf); err != nil {
		return fmt.Errorf("verbs: munmap: %w", err)
	}
	return nil
}
