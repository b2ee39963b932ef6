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

// watchStatus redraws the group's status every interval until ctx ends. On
// a terminal each frame replaces the last (cursor home, clear); elsewhere
// frames follow each other, each headed by its time, so a log keeps the
// history.
func watchStatus(ctx context.Context, w io.Writer, addrs []string, dial endpoint.DialFunc, timeout, interval time.Duration) error {
	f, ok := w.(*os.File)
	tty := ok && term.IsTerminal(int(f.Fd()))
	t := time.NewTicker(interval)
	defer t.Stop()
	var frame bytes.Buffer
	for {
		frame.Reset()
		if tty {
			frame.WriteString("\x1b[H\x1b[2J")
		}
		fmt.Fprintf(&frame, "%s  every %v, Ctrl-C to stop\n", time.Now().Format("15:04:05.000"), interval)
		writeStatus(ctx, &frame, addrs, dial, timeout)
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
