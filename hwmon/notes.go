package hwmon

import (
	"fmt"
	"time"
)

func probeNote(p ProbeSummary) string {
	if p.Samples == 0 {
		return fmt.Sprintf("no probe completions in the window yet (%d followers known)", len(p.Peers))
	}
	return fmt.Sprintf("%d followers, p99 %v over %d probes", len(p.Peers), time.Duration(p.P99Ns), p.Samples)
}

func checksumNote(c ChecksumCounts) string {
	return fmt.Sprintf("%d reads verified (%d failed), %d writes verified (%d failed)",
		c.ReadsTotal, c.ReadFailures, c.WritesTotal, c.WriteFailures)
}
