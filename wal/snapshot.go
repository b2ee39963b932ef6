package wal

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A snapshot file is
//
//	[u32 magic][u32 version][u64 index] data... [u64 data bytes][u32 crc32c][u32 magic]
//
// with the crc over header and data. It is written as a .tmp file, synced,
// then renamed to its final name, so a visible snapshot is a whole one.
const (
	snapshotMagic        = 0x4e53554d // "MUSN"
	snapshotVersion      = 1
	snapshotHeaderBytes  = 16
	snapshotTrailerBytes = 16
	snapshotPrefix       = "snap-"
	snapshotSuffix       = ".snap"
	snapshotTempSuffix   = ".tmp"
	snapshotBufferBytes  = 1 << 20
)

func snapshotName(index uint64) string {
	return fmt.Sprintf("%s%020d%s", snapshotPrefix, index, snapshotSuffix)
}

// SnapshotWriter streams a snapshot of any size to disk.
type SnapshotWriter struct {
	dir, tmpPath string
	index        uint64
	f            *os.File
	bw           *bufio.Writer
	crc          uint32
	dataBytes    uint64
	err          error
}

// CreateSnapshot starts the snapshot of the state after applying index.
// Write the state, then Commit (or Abort).
func CreateSnapshot(dir string, index uint64) (*SnapshotWriter, error) {
	tmp := filepath.Join(dir, snapshotName(index)+snapshotTempSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: create snapshot: %w", err)
	}
	s := &SnapshotWriter{dir: dir, tmpPath: tmp, index: index, f: f, bw: bufio.NewWriterSize(f, snapshotBufferBytes)}
	var h [snapshotHeaderBytes]byte
	le.PutUint32(h[0:], snapshotMagic)
	le.PutUint32(h[4:], snapshotVersion)
	le.PutUint64(h[8:], index)
	s.crc = crc32.Checksum(h[:], castagnoli)
	if _, err := s.bw.Write(h[:]); err != nil {
		s.Abort()
		return nil, fmt.Errorf("wal: write snapshot header %s: %w", tmp, err)
	}
	return s, nil
}

// Write appends p to the snapshot's data.
func (s *SnapshotWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.bw.Write(p)
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	s.dataBytes += uint64(n)
	if err != nil {
		s.err = fmt.Errorf("wal: write snapshot %s: %w", s.tmpPath, err)
		return n, s.err
	}
	return n, nil
}

// Commit seals the snapshot, makes it durable and gives it its final name;
// it returns that path.
func (s *SnapshotWriter) Commit() (string, error) {
	if s.err != nil {
		s.Abort()
		return "", s.err
	}
	var t [snapshotTrailerBytes]byte
	le.PutUint64(t[0:], s.dataBytes)
	le.PutUint32(t[8:], s.crc)
	le.PutUint32(t[12:], snapshotMagic)
	final := filepath.Join(s.dir, snapshotName(s.index))
	err := func() error {
		if _, err := s.bw.Write(t[:]); err != nil {
			return err
		}
		if err := s.bw.Flush(); err != nil {
			return err
		}
		if err := s.f.Sync(); err != nil {
			return err
		}
		if err := s.f.Close(); err != nil {
			return err
		}
		s.f = nil
		return os.Rename(s.tmpPath, final)
	}()
	if err != nil {
		s.Abort()
		return "", fmt.Errorf("wal: commit snapshot %s: %w", final, err)
	}
	s.err = fmt.Errorf("wal: snapshot %s already committed", final)
	return final, syncDir(s.dir)
}

// Abort discards an uncommitted snapshot.
func (s *SnapshotWriter) Abort() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	os.Remove(s.tmpPath)
	if s.err == nil {
		s.err = fmt.Errorf("wal: snapshot %s aborted", s.tmpPath)
	}
}

// SnapshotReader streams a snapshot's data and verifies its crc: the Read
// that reaches the end returns a *SnapshotCorruptError instead of io.EOF
// when the contents do not match.
type SnapshotReader struct {
	path      string
	index     uint64
	f         *os.File
	br        *bufio.Reader
	crc       uint32
	wantCRC   uint32
	leftBytes uint64
	dataBytes uint64
}

// OpenSnapshot opens a committed snapshot file.
func OpenSnapshot(path string) (*SnapshotReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wal: open snapshot: %w", err)
	}
	r, err := newSnapshotReader(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func newSnapshotReader(path string, f *os.File) (*SnapshotReader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("wal: stat snapshot: %w", err)
	}
	size := st.Size()
	if size < snapshotHeaderBytes+snapshotTrailerBytes {
		return nil, &SnapshotCorruptError{File: path, Reason: fmt.Sprintf("%d bytes is shorter than header and trailer", size)}
	}
	var h [snapshotHeaderBytes]byte
	var t [snapshotTrailerBytes]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("wal: read snapshot header %s: %w", path, err)
	}
	if _, err := f.ReadAt(t[:], size-snapshotTrailerBytes); err != nil {
		return nil, fmt.Errorf("wal: read snapshot trailer %s: %w", path, err)
	}
	if le.Uint32(h[0:]) != snapshotMagic || le.Uint32(t[12:]) != snapshotMagic {
		return nil, &SnapshotCorruptError{File: path, Reason: "bad magic"}
	}
	if v := le.Uint32(h[4:]); v != snapshotVersion {
		return nil, &SnapshotCorruptError{File: path, Reason: fmt.Sprintf("version %d, want %d", v, snapshotVersion)}
	}
	dataBytes := le.Uint64(t[0:])
	if dataBytes != uint64(size-snapshotHeaderBytes-snapshotTrailerBytes) {
		return nil, &SnapshotCorruptError{File: path, Reason: fmt.Sprintf("trailer says %d data bytes, file holds %d", dataBytes, size-snapshotHeaderBytes-snapshotTrailerBytes)}
	}
	index := le.Uint64(h[8:])
	if want, ok := parseSnapshotName(filepath.Base(path)); ok && want != index {
		return nil, &SnapshotCorruptError{File: path, Reason: fmt.Sprintf("header index %d, name says %d", index, want)}
	}
	if _, err := f.Seek(snapshotHeaderBytes, io.SeekStart); err != nil {
		return nil, fmt.Errorf("wal: seek snapshot %s: %w", path, err)
	}
	return &SnapshotReader{
		path: path, index: index, f: f,
		br:        bufio.NewReaderSize(f, snapshotBufferBytes),
		crc:       crc32.Checksum(h[:], castagnoli),
		wantCRC:   le.Uint32(t[8:]),
		leftBytes: dataBytes,
		dataBytes: dataBytes,
	}, nil
}

// Index is the log index the snapshot covers.
func (r *SnapshotReader) Index() uint64 { return r.index }

// DataBytes is the size of the snapshot's data.
func (r *SnapshotReader) DataBytes() uint64 { return r.dataBytes }

func (r *SnapshotReader) Read(p []byte) (int, error) {
	if r.leftBytes == 0 {
		if r.crc != r.wantCRC {
			return 0, &SnapshotCorruptError{File: r.path, Reason: fmt.Sprintf("crc32c %08x, trailer says %08x", r.crc, r.wantCRC)}
		}
		return 0, io.EOF
	}
	if uint64(len(p)) > r.leftBytes {
		p = p[:r.leftBytes]
	}
	n, err := r.br.Read(p)
	r.crc = crc32.Update(r.crc, castagnoli, p[:n])
	r.leftBytes -= uint64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, fmt.Errorf("wal: read snapshot %s: %w", r.path, err)
	}
	return n, nil
}

func (r *SnapshotReader) Close() error { return r.f.Close() }

// LatestSnapshot finds the committed snapshot with the highest index.
func LatestSnapshot(dir string) (index uint64, path string, ok bool, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, "", false, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	for _, e := range ents {
		if i, isSnap := parseSnapshotName(e.Name()); isSnap && (!ok || i > index) {
			index, path, ok = i, filepath.Join(dir, e.Name()), true
		}
	}
	return index, path, ok, nil
}

func parseSnapshotName(name string) (uint64, bool) {
	if !strings.HasPrefix(name, snapshotPrefix) || !strings.HasSuffix(name, snapshotSuffix) {
		return 0, false
	}
	i, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, snapshotPrefix), snapshotSuffix), 10, 64)
	return i, err == nil
}

func removeSnapshotsBelow(dir string, index uint64) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wal: list %s: %w", dir, err)
	}
	for _, e := range ents {
		if i, ok := parseSnapshotName(e.Name()); ok && i < index {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("wal: remove old snapshot: %w", err)
			}
		}
	}
	return nil
}

// removeSnapshotTemps drops snapshots a crash left unfinished.
func removeSnapshotTemps(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wal: list %s: %w", dir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), snapshotPrefix) && strings.HasSuffix(e.Name(), snapshotTempSuffix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("wal: remove unfinished snapshot: %w", err)
			}
		}
	}
	return nil
}
