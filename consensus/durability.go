package consensus

import (
	"errors"
	"fmt"
)

// Durability is how a replica group persists its log.
type Durability uint8

const (
	// DurabilityMemory keeps the log only in registered memory (Mu as
	// published): a total failure loses everything. No Storage is used.
	DurabilityMemory Durability = iota
	// DurabilityAsync journals every slot that lands in the log to
	// Storage in the background; commit does not wait for the disk. What a
	// total failure would lose is reported live (Stats.LossWindowEntries,
	// Stats.LossWindowNs). A replica restarted from its journal restores
	// its state machine and log from it; it votes with them only in an
	// election every member takes part in (it cannot prove it held what
	// a majority in memory counted on), so after a total failure the
	// group elects once every member runs again and loses at most the
	// reported window.
	DurabilityAsync
	// DurabilitySync counts a replica toward an entry's commit majority
	// only once the replica holds the entry durably in its journal: every
	// committed (so every acknowledged) entry survives the loss of every
	// replica's memory, and a replica restarted from an intact journal
	// votes again at once.
	DurabilitySync
)

func (d Durability) String() string {
	switch d {
	case DurabilityMemory:
		return "memory"
	case DurabilityAsync:
		return "async"
	case DurabilitySync:
		return "sync"
	}
	return fmt.Sprintf("Durability(%d)", uint8(d))
}

// ParseDurability reads "memory", "async" or "sync".
func ParseDurability(s string) (Durability, error) {
	for _, d := range []Durability{DurabilityMemory, DurabilityAsync, DurabilitySync} {
		if d.String() == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("consensus: unknown durability %q (want memory, async or sync)", s)
}

// Storage is the journal a replica keeps on stable storage in the async
// and sync modes. Records are opaque to it: appended in order, numbered
// 1, 2, ... in the order appended, made durable in that order (a record
// is never durable before the ones appended earlier). NewWALStorage is
// the one over package wal; the simulator's disk (sim.Disk) is another.
//
// Step calls Append and Durable on the driving goroutine; Append must not
// wait for the disk. An error from either is final: the replica fences
// itself (Replica.StorageErr says why), since after a failed write or
// sync nothing later can be reported durable.
type Storage interface {
	// Load calls fn with every durable record in order, once, before any
	// Append. An error that implements JournalDamaged() bool (returning
	// true) says the journal holds records it cannot prove (a hole, a
	// checksum failure, an unreadable sector): the replica then discards
	// it (Reset) and rejoins. Any other error fails New.
	Load(fn func(rec []byte) error) error
	// Reset discards the journal: the next Append is record 1.
	Reset() error
	// Append adds rec (copied) and returns its sequence number.
	Append(rec []byte) (seq uint64, err error)
	// Durable is the highest sequence number known durable.
	Durable() (seq uint64, err error)
}

// Compacter is a Storage that can replace the records up to one of them
// with a snapshot of any size (WALStorage): a replica then journals its
// own state now and then and the journal stops growing. Load passes the
// snapshot first, as one record, then the records after it.
type Compacter interface {
	// CompactDue reports whether enough has been appended since the last
	// snapshot to take another. Called on the driving goroutine; must not
	// wait for the disk.
	CompactDue() bool
	// Compact writes parts, in order, as the snapshot that stands for
	// records 1..seq, once seq is durable, and then drops those records.
	// It runs on a goroutine of its own and may take as long as the disk
	// needs; the next Compact is called only after it returned. An error
	// is final, as Append's.
	Compact(seq uint64, parts [][]byte) error
}

// ErrStorage is wrapped by the error of a replica that fenced itself
// because its Storage failed (Replica.StorageErr).
var ErrStorage = errors.New("consensus: storage failed")

// journalDamaged reports whether err says the journal cannot be trusted.
func journalDamaged(err error) bool {
	var d interface{ JournalDamaged() bool }
	return errors.As(err, &d) && d.JournalDamaged()
}

// validateDurability checks the durability fields of c.
func (c *Config) validateDurability() error {
	switch c.Durability {
	case DurabilityMemory:
		if c.Storage != nil {
			return cfgErr("Storage", "must be nil when Durability is memory")
		}
	case DurabilityAsync, DurabilitySync:
		if c.Storage == nil {
			return cfgErr("Storage", "is required when Durability is %v", c.Durability)
		}
	default:
		return cfgErr("Durability", "must be memory, async or sync, got %d", uint8(c.Durability))
	}
	return nil
}
