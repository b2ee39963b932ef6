package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// mu bench durability over the in-process fabric, with real journals on
// the temporary directory's disk: every mode commits, and in sync mode
// each commit makes the journal durable (about one group per commit and
// replica) while memory mode journals nothing.
func TestDurabilityBenchInproc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := durabilityBenchOptions{inproc: true, dataRoot: t.TempDir(), size: 64, samples: 40, drive: PollIdleSleep,
		modes: []string{"memory", "sync", "sync-instant"}, segmentBytes: 1 << 20}
	res, err := runDurabilityBench(ctx, o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != len(o.modes) {
		t.Fatalf("%d rows for %d modes", len(res.Rows), len(o.modes))
	}
	for _, row := range res.Rows {
		if n := row.Commit.TotalCount(); n != int64(o.samples) {
			t.Errorf("%s: %d commits timed, want %d", row.Mode, n, o.samples)
		}
		switch row.Mode {
		case "memory", "sync-instant":
			if row.GroupsPerCommit != 0 {
				t.Errorf("%s: %.2f journal groups per commit, want none", row.Mode, row.GroupsPerCommit)
			}
		case "sync":
			if row.GroupsPerCommit < 0.5 || row.RecordsPerCommit < 0.9 {
				t.Errorf("sync: %.2f records and %.2f durable groups per commit and replica, want about 1 each",
					row.RecordsPerCommit, row.GroupsPerCommit)
			}
		}
	}
	if res.RawWrite.TotalCount() == 0 || res.RawSync.TotalCount() == 0 || res.RawSync3.TotalCount() == 0 {
		t.Error("a raw floor has no samples")
	}
	var out bytesWriter
	writeDurabilityResult(&out, o, res)
	t.Logf("\n%s", out)
}

type bytesWriter []byte

func (b *bytesWriter) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }
func (b bytesWriter) String() string               { return string(b) }
