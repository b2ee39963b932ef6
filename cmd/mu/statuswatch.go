package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/rdmaconsensus/mu/endpoint"
)

// watchStamp is how a frame gives its time.
const watchStamp = "15:04:05.000"

// watchStatus redraws the group's status every interval until ctx ends. On
// a terminal each frame replaces the last (cursor home, clear); elsewhere
// frames follow each other, each headed by its time, so a log keeps the
// history. A node that stops answering keeps its id in the table, with
// what it was when last seen.
func watchStatus(ctx context.Context, w io.Writer, addrs []string, dial endpoint.DialFunc, timeout, interval time.Duration) error {
	f, ok := w.(*os.File)
	tty := ok && term.IsTerminal(int(f.Fd()))
	t := time.NewTicker(interval)
	defer t.Stop()
	var frame bytes.Buffer
	seen := map[string]lastAnswer{}
	for {
		frame.Reset()
		if tty {
			frame.WriteString("\x1b[H\x1b[2J")
		}
		at := time.Now()
		answers := queryStatus(ctx, addrs, dial, timeout)
		fmt.Fprintf(&frame, "%s  every %v, Ctrl-C to stop\n", at.Format(watchStamp), interval)
		renderStatus(&frame, answers, seen)
		for _, a := range answers {
			if a.err == nil {
				seen[a.addr] = lastAnswer{st: a.st, at: at}
			}
		}
		if !tty {
			frame.WriteString("\n")
		}
		if _, err := w.Write(frame.Bytes()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
