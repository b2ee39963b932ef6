// Package wal is a write-ahead log of committed entries and the snapshots
// that let it be compacted. A replica appends each committed slot in index
// order; a background flusher makes them durable in groups; Durable reports
// the highest index that would survive a power loss.
//
// On disk a log is a directory of preallocated segment files, each named by
// the index of its first record, and of snapshot files named by the index
// they cover. A record is
//
//	[u32 payload length][u32 crc32c over index+payload][u64 index][payload]
//
// little endian. Recovery reads segments in order and stops at the first
// record that does not verify. If nothing valid follows, that is a torn
// tail (a write that was never acknowledged as durable) and it is cut off;
// if a valid record follows, the log has a hole and Open returns a
// *CorruptionError naming the file and byte offset. Indexes must be
// consecutive across the whole log.
package wal
