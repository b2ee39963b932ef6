//go:build !cgo || !linux

package verbs

import (
	"errors"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

func TestStubNotSupported(t *testing.T) {
	if _, err := Devices(); !errors.Is(err, rdma.ErrNotSupported) {
		t.Errorf("Devices() = %v, want ErrNotSupported", err)
	}
	if _, err := Open(""); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Open = %v, want ErrNotSupported", err)
	}
	if LiveHandles() != 0 {
		t.Errorf("failed Open left %d handles", LiveHandles())
	}
}
