package sim

import (
	"errors"
	"testing"
)

func newDiskWorld(t *testing.T, cfg DiskConfig) (*World, *Disk) {
	t.Helper()
	w := New(1, DefaultConfig())
	w.AddNode(1, 64)
	return w, NewDisk(w, 1, cfg)
}

func loadAll(t *testing.T, d *Disk) ([]byte, error) {
	t.Helper()
	var got []byte
	err := d.Load(func(rec []byte) error { got = append(got, rec[0]); return nil })
	return got, err
}

// TestDiskGroupCommit: a flush takes what was appended before it started;
// records appended meanwhile go in the next flush; durable is in order.
func TestDiskGroupCommit(t *testing.T) {
	w, d := newDiskWorld(t, DiskConfig{Sync: Latency{BaseNs: 10_000}})
	for i := byte(1); i <= 3; i++ {
		if seq, err := d.Append([]byte{i}); err != nil || seq != uint64(i) {
			t.Fatalf("Append %d = %d, %v", i, seq, err)
		}
	}
	w.RunFor(5_000)
	d.Append([]byte{4})
	if n, _ := d.Durable(); n != 0 {
		t.Fatalf("durable %d before the first flush ended", n)
	}
	w.RunFor(5_000)
	if n, _ := d.Durable(); n != 1 {
		t.Fatalf("durable %d after the first flush, want 1 (one record was in it)", n)
	}
	w.RunFor(20_000)
	if n, _ := d.Durable(); n != 4 || d.Flushes != 2 {
		t.Fatalf("durable %d after %d flushes", n, d.Flushes)
	}
	if got, err := loadAll(t, d); err != nil || string(got) != "\x01\x02\x03\x04" {
		t.Fatalf("Load = %x, %v", got, err)
	}
}

// TestDiskPowerLossAndCrash: a process crash keeps what was appended (the
// page cache); a power loss loses what was not synced; a torn group
// leaves a hole that Load reports as a damaged journal.
func TestDiskPowerLossAndCrash(t *testing.T) {
	w, d := newDiskWorld(t, DiskConfig{Sync: Latency{BaseNs: 10_000}})
	d.Append([]byte{1})
	w.RunFor(20_000)
	d.Append([]byte{2})
	d.ProcessCrash()
	if got, err := loadAll(t, d); err != nil || len(got) != 2 {
		t.Fatalf("after a process crash: %x, %v", got, err)
	}
	d.Append([]byte{3})
	d.PowerLoss(false)
	if got, _ := loadAll(t, d); len(got) != 2 {
		t.Fatalf("after a power loss with one record unsynced: %x", got)
	}
	// Tear until a hole appears (the kept prefix is random).
	for k := 0; k < 50; k++ {
		w.RunFor(50_000)
		d.Append([]byte{9}) // starts a flush; the next eight wait for it
		for i := byte(0); i < 8; i++ {
			d.Append([]byte{10 + i})
		}
		w.RunFor(10_000) // the eight are now the group in flight
		d.PowerLoss(true)
		if _, err := loadAll(t, d); err != nil {
			var de *DiskError
			if !errors.As(err, &de) || !de.JournalDamaged() {
				t.Fatalf("Load = %v, want a *DiskError", err)
			}
			if err := d.Reset(); err != nil || d.Records() != 0 {
				t.Fatalf("Reset: %v, %d records", err, d.Records())
			}
			return
		}
	}
	t.Fatal("50 torn power losses left no hole")
}

// TestDiskFaults: a rotten record fails Load; a full disk fails Append
// with ErrDiskFull until freed; a slow disk stretches the flush in flight.
func TestDiskFaults(t *testing.T) {
	w, d := newDiskWorld(t, DiskConfig{Sync: Latency{BaseNs: 10_000}})
	d.Append([]byte{1})
	d.Append([]byte{2})
	w.RunFor(20_000)
	if rec := d.Rot(); rec == 0 {
		t.Fatal("Rot found nothing")
	}
	if _, err := loadAll(t, d); err == nil {
		t.Fatal("Load of a rotten record succeeded")
	}
	d.Reset()
	d.Fill()
	d.Append([]byte{1})
	if _, err := d.Append([]byte{2}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Append on a full disk = %v", err)
	}
	if _, err := d.Durable(); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Durable on a full disk = %v", err)
	}
	d.Free(0)
	if _, err := d.Append([]byte{3}); err != nil {
		t.Fatalf("Append after Free = %v", err)
	}
	w.RunFor(1_000)
	d.SetSlow(10)
	w.RunFor(50_000)
	if n, _ := d.Durable(); n != 0 {
		t.Fatalf("a 10x slower flush finished early: durable %d", n)
	}
	w.RunFor(300_000)
	if n, _ := d.Durable(); n != 2 {
		t.Fatalf("durable %d after the slow flush", n)
	}
}
