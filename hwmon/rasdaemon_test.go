package hwmon

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// rasdaemon's schema (ras-record.c), the columns hwmon reads plus a few.
var rasSchema = []string{
	`CREATE TABLE mc_event (id INTEGER PRIMARY KEY, timestamp TEXT, err_count INTEGER, err_type TEXT, err_msg TEXT,
		label TEXT, mc INTEGER, top_layer INTEGER, middle_layer INTEGER, lower_layer INTEGER, address INTEGER,
		grain INTEGER, syndrome INTEGER, driver_detail TEXT)`,
	`CREATE TABLE mce_record (id INTEGER PRIMARY KEY, timestamp TEXT, mcgcap INTEGER, mcgstatus INTEGER, status INTEGER,
		addr INTEGER, misc INTEGER, ip INTEGER, tsc INTEGER, walltime INTEGER, cpu INTEGER, cpuid INTEGER, apicid INTEGER,
		socketid INTEGER, cs INTEGER, bank INTEGER, cpuvendor INTEGER, bank_name TEXT, error_msg TEXT,
		mcgstatus_msg TEXT, mcistatus_msg TEXT, mcastatus_msg TEXT, user_action TEXT, mc_location TEXT)`,
	`CREATE TABLE aer_event (id INTEGER PRIMARY KEY, timestamp TEXT, dev_name TEXT, err_type TEXT, err_msg TEXT)`,
	`CREATE TABLE disk_errors (id INTEGER PRIMARY KEY, timestamp TEXT, dev TEXT, sector INTEGER, nr_sector INTEGER,
		error TEXT, rwbs TEXT, cmd TEXT)`,
}

const rasLayout = "2006-01-02 15:04:05 -0700"

type rasDB struct {
	t    *testing.T
	path string
	db   *sql.DB
}

func newRasDB(t *testing.T, withMemoryFailure bool) *rasDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ras-mc_event.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	stmts := rasSchema
	if withMemoryFailure {
		stmts = append(stmts, `CREATE TABLE memory_failure_event (id INTEGER PRIMARY KEY, timestamp TEXT, pfn TEXT, page_type TEXT, action_result TEXT)`)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	return &rasDB{t: t, path: path, db: db}
}

func (r *rasDB) exec(q string, args ...any) {
	r.t.Helper()
	if _, err := r.db.Exec(q, args...); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rasDB) mc(at time.Time, typ string, n int, label string) {
	r.exec(`INSERT INTO mc_event (timestamp, err_count, err_type, err_msg, label, mc) VALUES (?, ?, ?, 'read error', ?, 0)`,
		at.Format(rasLayout), n, typ, label)
}

func TestRasdaemonCountsWithinLookback(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	r := newRasDB(t, true)
	r.mc(now.Add(-48*time.Hour), "Corrected", 50, "DIMM_A1") // outside the lookback
	r.mc(now.Add(-3*time.Hour), "Corrected", 4, "DIMM_A1")
	r.mc(now.Add(-2*time.Hour).In(time.FixedZone("CET", 3600)), "Corrected", 6, "DIMM_B2")
	r.mc(now.Add(-time.Hour), "Corrected", 3, "DIMM_B2")
	r.mc(now.Add(-time.Minute), "Uncorrected", 1, "DIMM_B2")
	r.exec(`INSERT INTO mce_record (timestamp, status, bank) VALUES (?, ?, 4)`, now.Add(-time.Hour).Format(rasLayout), int64(-0x6000000000000000)) // VAL|UC set
	r.exec(`INSERT INTO mce_record (timestamp, status, bank) VALUES (?, ?, 4)`, now.Add(-time.Hour).Format(rasLayout), int64(0x1000000000000000))
	r.exec(`INSERT INTO memory_failure_event (timestamp, pfn, page_type, action_result) VALUES (?, '0x1234', 'dirty LRU page', 'Recovered')`, now.Add(-time.Hour).Format(rasLayout))
	r.exec(`INSERT INTO aer_event (timestamp, dev_name, err_type, err_msg) VALUES (?, '0000:3b:00.0', 'Corrected', 'Receiver Error')`, now.Add(-time.Hour).Format(rasLayout))
	r.exec(`INSERT INTO aer_event (timestamp, dev_name, err_type, err_msg) VALUES (?, '0000:3b:00.0', 'Uncorrected (Fatal)', 'x')`, now.Add(-time.Hour).Format(rasLayout))
	r.exec(`INSERT INTO disk_errors (timestamp, dev, sector, nr_sector, error) VALUES (?, '8:0', 10, 8, 'I/O error')`, now.Add(-time.Hour).Format(rasLayout))
	r.exec(`INSERT INTO disk_errors (timestamp, dev, sector, nr_sector, error) VALUES ('yesterday-ish', '8:0', 10, 8, 'I/O error')`)

	got, err := ReadRasdaemon(context.Background(), r.path, now, 24*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := RasdaemonCounts{Lookback: 24 * time.Hour,
		Tables:       []string{"aer_event", "disk_errors", "mc_event", "mce_record", "memory_failure_event"},
		MemCorrected: 13, MemUncorrected: 1, MCECorrected: 1, MCEUncorrected: 1, MemoryFailures: 1, DiskErrors: 1,
		AERCorrected: 1, AERUncorrected: 1, UnparsedTimestamps: 1, WorstCELabel: "DIMM_B2", WorstCECount: 9}
	if strings.Join(got.Tables, ",") != strings.Join(want.Tables, ",") {
		t.Fatalf("tables = %v", got.Tables)
	}
	got.Tables, want.Tables = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("counts\n got %+v\nwant %+v", got, want)
	}
}

func TestRasdaemonOlderSchemaIsNotedNotFatal(t *testing.T) {
	now := time.Now()
	r := newRasDB(t, false)
	r.mc(now.Add(-time.Minute), "Corrected", 2, "")
	var s Snapshot
	s.At = now
	(&RasdaemonCollector{Path: r.path, Lookback: 24 * time.Hour}).Collect(context.Background(), &s)
	st, _ := signalOf(s, "rasdaemon")
	if !st.Available || !strings.Contains(st.Note, "memory_failure_event") || s.Rasdaemon.MemCorrected != 2 {
		t.Fatalf("status %+v counts %+v", st, s.Rasdaemon)
	}
}

func TestRasdaemonBadDatabases(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	dir := t.TempDir()

	_, err := ReadRasdaemon(ctx, filepath.Join(dir, "absent.db"), now, time.Hour, 0)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing: %v", err)
	}

	corrupt := filepath.Join(dir, "corrupt.db")
	if err := os.WriteFile(corrupt, []byte(strings.Repeat("garbage, not sqlite ", 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadRasdaemon(ctx, corrupt, now, time.Hour, 0)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt: %v", err)
	}

	foreign := filepath.Join(dir, "foreign.db")
	db, err := sql.Open("sqlite", "file:"+foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = ReadRasdaemon(ctx, foreign, now, time.Hour, 0)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "none of rasdaemon's event tables") {
		t.Fatalf("foreign: %v", err)
	}

	// A path that cannot be opened as a file (root can read any file, so
	// permissions alone cannot make it unreadable here).
	if _, err = ReadRasdaemon(ctx, t.TempDir(), now, time.Hour, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("directory as database: %v", err)
	}
	if os.Geteuid() != 0 {
		unreadable := newRasDB(t, true).path
		if err := os.Chmod(unreadable, 0); err != nil {
			t.Fatal(err)
		}
		if _, err = ReadRasdaemon(ctx, unreadable, now, time.Hour, 0); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("unreadable: %v", err)
		}
	}
}

func TestRasdaemonLockedDatabaseIsUnavailable(t *testing.T) {
	r := newRasDB(t, true)
	r.mc(time.Now(), "Corrected", 1, "")
	ctx := context.Background()
	conn, err := r.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	_, err = ReadRasdaemon(ctx, r.path, time.Now(), time.Hour, 30*time.Millisecond)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("locked: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRasdaemon(ctx, r.path, time.Now(), time.Hour, 30*time.Millisecond); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

func TestRasdaemonNeverWrites(t *testing.T) {
	r := newRasDB(t, true)
	r.mc(time.Now(), "Corrected", 1, "")
	st1, _ := os.Stat(r.path)
	if _, err := ReadRasdaemon(context.Background(), r.path, time.Now(), time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(r.path)
	if !st1.ModTime().Equal(st2.ModTime()) || st1.Size() != st2.Size() {
		t.Fatal("reading modified the database")
	}
	if _, err := os.Stat(r.path + "-journal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a journal appeared: %v", err)
	}
}
