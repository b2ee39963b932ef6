package main

import (
	"context"
	"errors"
	"io"
	"log"
	"runtime"
	"testing"

	"github.com/rdmaconsensus/mu/consensus"
)

// A node, or an in-process group, whose busy-polling drivers would take
// every Go processor refuses to start and says why.
func TestSpinRefusedWithoutSpareProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	err := runNode(context.Background(), Config{PollMode: PollSpin}, "auto", log.New(io.Discard, "", 0))
	if !errors.Is(err, consensus.ErrTooFewProcs) {
		t.Fatalf("node with poll_mode spin on GOMAXPROCS 1: %v, want ErrTooFewProcs", err)
	}
	if _, err := newInprocGroup(3, PollSpin); !errors.Is(err, consensus.ErrTooFewProcs) {
		t.Fatalf("3 spinning replicas on GOMAXPROCS 1: %v, want ErrTooFewProcs", err)
	}
	if err := checkPollers(PollSpinYield, 3); err != nil {
		t.Fatalf("spin-yield: %v", err)
	}
	runtime.GOMAXPROCS(4)
	if err := checkPollers(PollSpin, 3); err != nil {
		t.Fatalf("3 spinning replicas on GOMAXPROCS 4: %v", err)
	}
}
