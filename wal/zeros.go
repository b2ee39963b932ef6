package wal

import "os"

// writeZeros is the portable preallocation: blocks are allocated and
// already written, so later writes only change data.
func writeZeros(f *os.File, off, n int64) error {
	const chunkBytes = 1 << 20
	zero := make([]byte, min(n, chunkBytes))
	for n > 0 {
		c := min(n, int64(len(zero)))
		if _, err := f.WriteAt(zero[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}
