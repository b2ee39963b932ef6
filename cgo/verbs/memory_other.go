//go:build !linux

package verbs

func mmapAnon(int) ([]byte, error) { return nil, ErrNotSupported }

func munmap([]byte) error { return ErrNotSupported }
