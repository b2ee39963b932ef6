package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestStepProgressOffATerminalPrintsOneLinePerStep(t *testing.T) {
	var b bytes.Buffer
	p := newStepProgress(&b, "3 nodes, SIGKILL", 3)
	for _, n := range []string{"last 1.0ms", "last 2.0ms", "last 3.0ms"} {
		p.Step(n)
	}
	want := "3 nodes, SIGKILL: 1/3 last 1.0ms\n3 nodes, SIGKILL: 2/3 last 2.0ms\n3 nodes, SIGKILL: 3/3 last 3.0ms\n"
	if got := b.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if strings.Contains(b.String(), "\r") {
		t.Error("a carriage return reached a non-terminal")
	}
}
