package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// A short fault-free run elects one leader, commits, and reports the
// detector's figures.
func TestStabilityReports(t *testing.T) {
	res, err := runStability(context.Background(), 3, PollSpinYield, 300*time.Millisecond, 500)
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed == 0 || res.Samples == 0 || res.PeriodNs == 0 || res.BoundNs == 0 {
		t.Fatalf("nothing measured: %+v", res)
	}
	var b bytes.Buffer
	writeStability(&b, res, PollSpinYield)
	for _, want := range []string{"leader changes", "suspicions", "per minute", "failure bound", "descheduled"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, b.String())
		}
	}
	t.Log(b.String())
}
