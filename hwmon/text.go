package hwmon

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText renders the report for `mu health`: the verdict and what it
// means for consensus, the reasons, and every signal with what was read or
// why it is unavailable on this machine.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "verdict: %s", r.Verdict)
	switch r.Verdict {
	case Failed:
		b.WriteString(" (fence: stop heartbeat, give up leadership, refuse proposals)")
	case Degraded:
		b.WriteString(" (serving, not preferred as leader)")
	}
	if !r.At.IsZero() {
		fmt.Fprintf(&b, "\nat: %s", r.At.UTC().Format(time.RFC3339))
	}
	b.WriteString("\n\nreasons:\n")
	if len(r.Reasons) == 0 {
		b.WriteString("  none\n")
	}
	for _, rs := range r.Reasons {
		b.WriteString("  " + rs.String() + "\n")
	}
	avail, unavail := 0, 0
	for _, s := range r.Signals {
		if s.Available {
			avail++
		} else {
			unavail++
		}
	}
	fmt.Fprintf(&b, "\nsignals (%d available, %d unavailable):\n", avail, unavail)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, s := range r.Signals {
		if s.Available {
			fmt.Fprintf(tw, "  %s\tok: %s\n", s.Name, s.Note)
		}
	}
	for _, s := range r.Signals {
		if !s.Available {
			fmt.Fprintf(tw, "  %s\tsignal unavailable: %s\n", s.Name, s.Reason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Disks) > 0 {
		b.WriteString("\ndisk latency:\n")
		for _, d := range r.Disks {
			d.ReadLatency, d.WriteLatency = d.ReadLatency.Round(time.Microsecond), d.WriteLatency.Round(time.Microsecond)
			d.P99, d.Baseline = d.P99.Round(time.Microsecond), d.Baseline.Round(time.Microsecond)
			base := "learning"
			if d.Baseline > 0 {
				base = fmt.Sprintf("baseline %v, %.2gx", d.Baseline, d.Ratio)
			}
			if d.P99 == 0 {
				fmt.Fprintf(tw, "  %s\tread %v\twrite %v\tp99 n/a (no I/O in window)\n", d.Device, d.ReadLatency, d.WriteLatency)
				continue
			}
			fmt.Fprintf(tw, "  %s\tread %v\twrite %v\tp99 %v (%s, %s)\n", d.Device, d.ReadLatency, d.WriteLatency, d.P99, d.Source, base)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
