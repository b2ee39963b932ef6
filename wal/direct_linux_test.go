package wal

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDirectRefusedOnTmpfs(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "wal")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(dir)
	o := smallOpts(dir)
	o.Method = SyncDirect
	if f, err := os.OpenFile(dir+"/probe", os.O_RDWR|os.O_CREATE|unix.O_DIRECT, 0o644); err == nil {
		f.Close()
		t.Skip("this kernel's tmpfs accepts O_DIRECT (Linux 6.6 and later)")
	}
	if _, err := Open(o); !errors.Is(err, ErrDirectUnsupported) {
		t.Fatalf("Open with O_DIRECT on tmpfs: %v, want ErrDirectUnsupported", err)
	}
}

func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}
