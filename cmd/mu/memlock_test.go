package main

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMemlockErrorNamesLimitAndRemedies(t *testing.T) {
	err := memlockError(64<<20, 8<<20, false)
	if err == nil {
		t.Fatal("an 8 MiB limit passed for a 64 MiB region")
	}
	for _, want := range []string{"RLIMIT_MEMLOCK is 8388608 bytes (8.0 MiB)", "at least 67108864 bytes (64.0 MiB)",
		"LimitMEMLOCK=infinity", "ulimit -l unlimited", "memlock unlimited", "Cannot allocate memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	for _, c := range []struct {
		limit uint64
		cap   bool
	}{{64 << 20, false}, {unix.RLIM_INFINITY, false}, {8 << 20, true}} {
		if err := memlockError(64<<20, c.limit, c.cap); err != nil {
			t.Errorf("limit %d, CAP_IPC_LOCK %v: %v", c.limit, c.cap, err)
		}
	}
}

func TestCheckMemlockReadsThisProcess(t *testing.T) {
	// Whatever this process's limit, a zero-byte region fits it.
	if err := checkMemlock(0); err != nil {
		t.Error(err)
	}
}
