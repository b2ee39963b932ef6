package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// capIPCLock is CAP_IPC_LOCK's bit: a process holding it may pin memory
// past RLIMIT_MEMLOCK.
const capIPCLock = 14

// checkMemlock says, before any RDMA registration, whether this process may
// pin regionBytes: memory registration pins every page, and past
// RLIMIT_MEMLOCK it fails with a bare "Cannot allocate memory". The error
// names the limit, the need and the three ways to raise it.
func checkMemlock(regionBytes uint64) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return nil // cannot tell; registration will report for itself
	}
	return memlockError(regionBytes, lim.Cur, hasCapIPCLock())
}

// memlockError is checkMemlock's verdict for a soft limit of limitBytes.
func memlockError(regionBytes, limitBytes uint64, capIPCLock bool) error {
	if limitBytes == unix.RLIM_INFINITY || limitBytes >= regionBytes || capIPCLock {
		return nil
	}
	return fmt.Errorf("locked-memory limit too low: RDMA registration pins the replica's region, %s (log_size_bytes and the heartbeat and permission words), "+
		"but RLIMIT_MEMLOCK is %s, so registration would fail with \"Cannot allocate memory\". "+
		"Raise it to at least %s, or to unlimited: under systemd, LimitMEMLOCK=infinity in the unit (deploy/mu.service has it); "+
		"in a shell, `ulimit -l unlimited` as root before starting mu; for a login user, the line `%s - memlock unlimited` in /etc/security/limits.d/mu.conf",
		mib(regionBytes), mib(limitBytes), mib(regionBytes), userName())
}

func mib(b uint64) string {
	if b == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return fmt.Sprintf("%d bytes (%.1f MiB)", b, float64(b)/(1<<20))
}

func userName() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "mu"
}

// hasCapIPCLock reads the effective capability set of this process.
func hasCapIPCLock() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<capIPCLock) != 0
		}
	}
	return false
}
