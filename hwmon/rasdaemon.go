package hwmon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure-Go driver "sqlite": no cgo outside cgo/verbs
)

// rasdaemonTables are the event tables hwmon reads; older rasdaemon
// versions lack some of them, which is noted, not fatal.
var rasdaemonTables = []string{"mc_event", "mce_record", "memory_failure_event", "disk_errors", "aer_event"}

// rasdaemonMaxRows bounds how many recent rows one table contributes, so a
// database with years of history cannot stall a collection.
const rasdaemonMaxRows = 100000

// RasdaemonCollector reads rasdaemon's SQLite database read-only.
type RasdaemonCollector struct {
	Path     string
	Lookback time.Duration
	// BusyTimeout is how long to wait for rasdaemon's write lock.
	BusyTimeout time.Duration
}

func (c *RasdaemonCollector) Name() string { return "rasdaemon" }

func (c *RasdaemonCollector) Collect(ctx context.Context, s *Snapshot) {
	if c.Path == "" {
		s.Signals = append(s.Signals, unavailable("rasdaemon", "", errors.New("no database configured (Config.RasdaemonDB is empty)")))
		return
	}
	counts, err := ReadRasdaemon(ctx, c.Path, s.At, c.Lookback, c.BusyTimeout)
	if err != nil {
		s.Signals = append(s.Signals, unavailable("rasdaemon", c.Path, err))
		return
	}
	s.Rasdaemon = &counts
	note := fmt.Sprintf("last %v: memory CE %d UE %d, MCE corrected %d uncorrected %d, memory failures %d, disk errors %d, AER corrected %d uncorrected %d",
		c.Lookback, counts.MemCorrected, counts.MemUncorrected, counts.MCECorrected, counts.MCEUncorrected,
		counts.MemoryFailures, counts.DiskErrors, counts.AERCorrected, counts.AERUncorrected)
	if missing := missingTables(counts.Tables); len(missing) > 0 {
		note += "; tables absent in this rasdaemon version: " + strings.Join(missing, ", ")
	}
	if counts.UnparsedTimestamps > 0 {
		note += fmt.Sprintf("; %d rows with unparseable timestamps ignored", counts.UnparsedTimestamps)
	}
	s.Signals = append(s.Signals, SignalStatus{Name: "rasdaemon", Source: c.Path, Available: true, Note: note})
}

func missingTables(have []string) []string {
	var out []string
	for _, t := range rasdaemonTables {
		if !containsString(have, t) {
			out = append(out, t)
		}
	}
	return out
}

func containsString(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// ReadRasdaemon counts events in the database at path whose timestamp lies
// within lookback before now. The database is opened read-only (and
// query_only) so hwmon can never disturb rasdaemon; a locked, corrupt or
// foreign database is an ErrUnavailable error saying which.
func ReadRasdaemon(ctx context.Context, path string, now time.Time, lookback, busy time.Duration) (RasdaemonCounts, error) {
	out := RasdaemonCounts{Lookback: lookback}
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return out, fmt.Errorf("%w: %s does not exist (rasdaemon not installed or not recording)", ErrUnavailable, path)
		}
		return out, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if st.IsDir() {
		return out, fmt.Errorf("%w: %s is a directory, not rasdaemon's database", ErrUnavailable, path)
	}
	if busy <= 0 {
		busy = 200 * time.Millisecond
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return out, fmt.Errorf("%w: opening %s: %v", ErrUnavailable, path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return out, fmt.Errorf("%w: reading sqlite_master of %s: %v", ErrUnavailable, path, describeSQLiteErr(err))
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return out, fmt.Errorf("%w: reading sqlite_master of %s: %v", ErrUnavailable, path, describeSQLiteErr(err))
		}
		if containsString(rasdaemonTables, name) {
			out.Tables = append(out.Tables, name)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return out, fmt.Errorf("%w: reading sqlite_master of %s: %v", ErrUnavailable, path, describeSQLiteErr(err))
	}
	if len(out.Tables) == 0 {
		return out, fmt.Errorf("%w: %s has none of rasdaemon's event tables (%s)", ErrUnavailable, path, strings.Join(rasdaemonTables, ", "))
	}
	sort.Strings(out.Tables)

	cutoff := now.Add(-lookback)
	ceByLabel := map[string]uint64{}
	for _, t := range out.Tables {
		var err error
		switch t {
		case "mc_event":
			err = scanEvents(ctx, db, `SELECT timestamp, err_type, err_count, label FROM mc_event`, cutoff, now, &out,
				func(typ string, n int64, label string) {
					cnt := uint64(max(n, 1))
					switch {
					case strings.EqualFold(typ, "Corrected"):
						out.MemCorrected += cnt
						ceByLabel[label] += cnt
					case strings.EqualFold(typ, "Uncorrected"), strings.EqualFold(typ, "Fatal"):
						out.MemUncorrected += cnt
					}
				})
		case "mce_record":
			err = scanEvents(ctx, db, `SELECT timestamp, '', status, '' FROM mce_record`, cutoff, now, &out,
				func(_ string, status int64, _ string) {
					const mciStatusUC = 1 << 61
					if uint64(status)&mciStatusUC != 0 {
						out.MCEUncorrected++
					} else {
						out.MCECorrected++
					}
				})
		case "memory_failure_event":
			err = scanEvents(ctx, db, `SELECT timestamp, '', 1, '' FROM memory_failure_event`, cutoff, now, &out,
				func(string, int64, string) { out.MemoryFailures++ })
		case "disk_errors":
			err = scanEvents(ctx, db, `SELECT timestamp, '', 1, '' FROM disk_errors`, cutoff, now, &out,
				func(string, int64, string) { out.DiskErrors++ })
		case "aer_event":
			err = scanEvents(ctx, db, `SELECT timestamp, err_type, 1, '' FROM aer_event`, cutoff, now, &out,
				func(typ string, _ int64, _ string) {
					if strings.HasPrefix(strings.ToLower(typ), "uncorrected") {
						out.AERUncorrected++
					} else {
						out.AERCorrected++
					}
				})
		}
		if err != nil {
			return out, fmt.Errorf("%w: reading %s from %s: %v", ErrUnavailable, t, path, describeSQLiteErr(err))
		}
	}
	for label, n := range ceByLabel {
		if n > out.WorstCECount || (n == out.WorstCECount && label < out.WorstCELabel) {
			out.WorstCECount, out.WorstCELabel = n, label
		}
	}
	return out, nil
}

// scanEvents walks a table newest first (rowid order is insertion order)
// and stops at the first row older than cutoff.
func scanEvents(ctx context.Context, db *sql.DB, query string, cutoff, now time.Time, out *RasdaemonCounts,
	fn func(typ string, n int64, label string)) error {
	rows, err := db.QueryContext(ctx, query+fmt.Sprintf(` ORDER BY rowid DESC LIMIT %d`, rasdaemonMaxRows))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ts, typ, label sql.NullString
		var n sql.NullInt64
		if err := rows.Scan(&ts, &typ, &n, &label); err != nil {
			return err
		}
		at, ok := parseRasTimestamp(ts.String)
		if !ok {
			out.UnparsedTimestamps++
			continue
		}
		if at.Before(cutoff) {
			break
		}
		if at.After(now.Add(time.Minute)) {
			continue // from the future: clock was wrong when recorded
		}
		fn(typ.String, n.Int64, label.String)
	}
	return rows.Err()
}

// rasdaemon writes "%Y-%m-%d %H:%M:%S %z"; older builds omit the zone.
var rasTimestampLayouts = []string{"2006-01-02 15:04:05 -0700", "2006-01-02 15:04:05 MST", "2006-01-02 15:04:05", time.RFC3339}

func parseRasTimestamp(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range rasTimestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func describeSQLiteErr(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "locked") || strings.Contains(msg, "SQLITE_BUSY"):
		return "database is locked by another process (rasdaemon writing?): " + msg
	case strings.Contains(msg, "not a database") || strings.Contains(msg, "malformed") || strings.Contains(msg, "SQLITE_CORRUPT"):
		return "database is corrupt: " + msg
	}
	return msg
}
