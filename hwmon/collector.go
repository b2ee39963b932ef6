package hwmon

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Collector reads one kind of signal into a Snapshot. Collect appends its
// readings and at least one SignalStatus (available or not, with the
// reason); it never fails the whole snapshot. Collectors holding kernel
// handles also implement io.Closer.
type Collector interface {
	Name() string
	Collect(ctx context.Context, s *Snapshot)
}

// readUint reads a sysfs file holding one unsigned decimal integer.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not an unsigned integer: %w", path, err)
	}
	return v, nil
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
