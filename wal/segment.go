package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// blockBytes is the O_DIRECT alignment of buffers, offsets and lengths:
// the largest logical block size in common use.
const blockBytes = 4096

const segmentSuffix = ".wal"

func segmentName(firstIndex uint64) string {
	return fmt.Sprintf("%020d%s", firstIndex, segmentSuffix)
}

// segmentInfo is one segment file found in the directory.
type segmentInfo struct {
	path       string
	firstIndex uint64
}

// listSegments returns the segments in index order.
func listSegments(dir string) ([]segmentInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	var segs []segmentInfo
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil || first == 0 {
			return nil, fmt.Errorf("wal: segment file %s: name is not a first index", filepath.Join(dir, name))
		}
		segs = append(segs, segmentInfo{path: filepath.Join(dir, name), firstIndex: first})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].firstIndex < segs[j].firstIndex })
	return segs, nil
}

// segmentFile is the segment being appended to.
type segmentFile struct {
	f          *os.File
	path       string
	firstIndex uint64
	capBytes   int64
	offBytes   int64 // end of written records
	method     SyncMethod
	// tail holds the written bytes of the partial last block: O_DIRECT
	// rewrites that block whole on the next flush.
	tail []byte
	// direct is the reused aligned staging buffer of O_DIRECT writes.
	direct []byte
}

// createSegment makes a preallocated segment and makes its name durable.
func createSegment(dir string, firstIndex uint64, capBytes int64, zeros bool) (string, error) {
	path := filepath.Join(dir, segmentName(firstIndex))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("wal: create segment: %w", err)
	}
	if err := preallocate(f, 0, capBytes, zeros); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("wal: preallocate %s to %d bytes: %w", path, capBytes, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("wal: sync new segment %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("wal: close new segment %s: %w", path, err)
	}
	return path, syncDir(dir)
}

// openSegment opens an existing, preallocated segment for appending at
// offBytes; tail is the content of the block that offBytes falls in.
func openSegment(path string, firstIndex uint64, capBytes, offBytes int64, tail []byte, method SyncMethod) (*segmentFile, error) {
	flags := os.O_RDWR
	switch method {
	case SyncDsync:
		flags |= dsyncFlag
	case SyncDirect:
		if directFlag == 0 {
			return nil, fmt.Errorf("wal: open %s: %w", path, ErrDirectUnsupported)
		}
		flags |= directFlag | dsyncFlag
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if method == SyncDirect && isInvalidArg(err) {
			return nil, fmt.Errorf("wal: open %s: %w", path, ErrDirectUnsupported)
		}
		return nil, fmt.Errorf("wal: open segment: %w", err)
	}
	s := &segmentFile{f: f, path: path, firstIndex: firstIndex, capBytes: capBytes, offBytes: offBytes, method: method}
	if method == SyncDirect {
		s.tail = make([]byte, 0, blockBytes)
		s.tail = append(s.tail, tail...)
	}
	return s, nil
}

// write puts p at the end of the written records.
func (s *segmentFile) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if s.offBytes+int64(len(p)) > s.capBytes {
		return fmt.Errorf("wal: write of %d bytes at %d overflows segment %s of %d bytes", len(p), s.offBytes, s.path, s.capBytes)
	}
	if s.method != SyncDirect {
		if _, err := s.f.WriteAt(p, s.offBytes); err != nil {
			return fmt.Errorf("wal: write %s: %w", s.path, err)
		}
		s.offBytes += int64(len(p))
		return nil
	}
	start := s.offBytes - int64(len(s.tail))
	n := len(s.tail) + len(p)
	padded := (n + blockBytes - 1) / blockBytes * blockBytes
	if cap(s.direct) < padded {
		s.direct = alignedBuffer(padded)
	}
	buf := s.direct[:padded]
	copy(buf, s.tail)
	copy(buf[len(s.tail):], p)
	clear(buf[n:])
	if _, err := s.f.WriteAt(buf, start); err != nil {
		if isInvalidArg(err) {
			return fmt.Errorf("wal: O_DIRECT write %s: %w (%v)", s.path, ErrDirectUnsupported, err)
		}
		return fmt.Errorf("wal: write %s: %w", s.path, err)
	}
	s.offBytes += int64(len(p))
	keep := n % blockBytes
	s.tail = append(s.tail[:0], buf[n-keep:n]...)
	return nil
}

// sync makes the written bytes durable; the O_DSYNC methods already are.
func (s *segmentFile) sync() error {
	if s.method != SyncFdatasync {
		return nil
	}
	if err := fdatasync(s.f); err != nil {
		return fmt.Errorf("wal: fdatasync %s: %w", s.path, err)
	}
	return nil
}

func (s *segmentFile) close() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("wal: close %s: %w", s.path, err)
	}
	return nil
}

// alignedBuffer returns n bytes whose address is a multiple of blockBytes.
func alignedBuffer(n int) []byte {
	raw := make([]byte, n+blockBytes)
	shift := 0
	if r := int(uintptrOf(raw) % blockBytes); r != 0 {
		shift = blockBytes - r
	}
	return raw[shift : shift+n : shift+n]
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: sync directory %s: %w", dir, err)
	}
	return nil
}

// probeDirect fails early, with ErrDirectUnsupported, where the
// filesystem refuses O_DIRECT.
func probeDirect(dir string) error {
	path := filepath.Join(dir, ".direct-probe")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("wal: probe O_DIRECT: %w", err)
	}
	f.Close()
	defer os.Remove(path)
	if directFlag == 0 {
		return fmt.Errorf("wal: %s: %w", dir, ErrDirectUnsupported)
	}
	g, err := os.OpenFile(path, os.O_RDWR|directFlag, 0)
	if err != nil {
		return fmt.Errorf("wal: %s: %w (%v)", dir, ErrDirectUnsupported, err)
	}
	return g.Close()
}
