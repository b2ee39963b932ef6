package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestWatchStatusRedrawsUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing answers there: every frame shows the node unreachable
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if err := watchStatus(ctx, &out, []string{addr}, nil, 50*time.Millisecond, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	frames := strings.Count(out.String(), "Ctrl-C to stop")
	if frames < 2 || strings.Count(out.String(), "unreachable") != frames {
		t.Errorf("%d frames, want at least 2, each with the node unreachable:\n%s", frames, out.String())
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("escape sequences reached a non-terminal")
	}
}
