package bootstrap

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdmaconsensus/mu/internal/backoff"
	"github.com/rdmaconsensus/mu/rdma"
)

// Bootstrap errors, for errors.Is. A rejection that the peer reports carries
// the same sentinel as the check that failed on the peer's side.
var (
	ErrForeignCluster   = errors.New("rdma: bootstrap: peer belongs to another cluster")
	ErrVersionMismatch  = errors.New("rdma: bootstrap: protocol version mismatch")
	ErrBadHandshake     = errors.New("rdma: bootstrap: malformed handshake")
	ErrHandshakeTimeout = errors.New("rdma: bootstrap: handshake timed out")
	ErrUnexpectedPeer   = errors.New("rdma: bootstrap: unexpected node id")
	// ErrPeerRejected: the peer validated the handshake but could not set up
	// its side (its Prepare or Commit failed).
	ErrPeerRejected = errors.New("rdma: bootstrap: peer rejected the connection")
	// ErrUnauthenticated: the TLS handshake failed, or the peer's
	// certificate names another node than the one dialed.
	ErrUnauthenticated = errors.New("rdma: bootstrap: peer not authenticated")
)

// DefaultHandshakeTimeout bounds one handshake when Config.Timeout
// is zero. Loopback and LAN handshakes take well under a millisecond; the
// margin is for a peer busy creating queue pairs.
const DefaultHandshakeTimeout = 2 * time.Second

// Wire format. Every frame, in every protocol version, starts with the same
// 12-byte header so that a peer of another version can still be told why it
// is refused:
//
//	magic "MuBs" | version u16 | kind u8 | reserved u8 (0) | body length u32
//
// followed by the body and a CRC-32C of header and body (u32). All integers
// are big-endian.
//
// Bodies:
//
//	hello:  cluster u64 | from u16 | to u16 | count u8 | count x endpoint
//	commit: empty
//	reject: code u8 | message length u16 | message (UTF-8)
//
// An endpoint is 57 bytes: version u16 | cluster u64 | node u16 | plane u8 |
// gid [16] | qpn u32 | psn u32 | addr u64 | rkey u32 | length u64.
const (
	frameMagic      = "MuBs"
	frameHeaderLen  = 12
	frameTrailerLen = 4
	endpointWireLen = 57
	helloFixedLen   = 8 + 2 + 2 + 1
	// maxBodyLen bounds what a reader allocates for a frame; a hello with
	// one endpoint per plane is far smaller.
	maxBodyLen = 4096
)

type frameKind uint8

const (
	kindHello  frameKind = 1
	kindCommit frameKind = 2
	kindReject frameKind = 3
)

func (k frameKind) String() string {
	switch k {
	case kindHello:
		return "hello"
	case kindCommit:
		return "commit"
	case kindReject:
		return "reject"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Reject codes name the sentinel the refusing side matched.
const (
	rejectBadHandshake uint8 = iota + 1
	rejectVersion
	rejectCluster
	rejectPeer
	rejectSetup
)

var rejectSentinels = map[uint8]error{
	rejectBadHandshake: ErrBadHandshake,
	rejectVersion:      ErrVersionMismatch,
	rejectCluster:      ErrForeignCluster,
	rejectPeer:         ErrUnexpectedPeer,
	rejectSetup:        ErrPeerRejected,
}

func rejectCode(err error) uint8 {
	for _, c := range []uint8{rejectVersion, rejectCluster, rejectPeer, rejectBadHandshake} {
		if errors.Is(err, rejectSentinels[c]) {
			return c
		}
	}
	return rejectSetup
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// hello is the body of a hello frame.
type hello struct {
	Cluster   uint64
	From, To  rdma.NodeID
	Endpoints []rdma.Endpoint
}

func appendFrame(dst []byte, kind frameKind, body []byte) []byte {
	return appendFrameVersion(dst, rdma.ProtocolVersion, kind, body)
}

func appendFrameVersion(dst []byte, version uint16, kind frameKind, body []byte) []byte {
	start := len(dst)
	dst = append(dst, frameMagic...)
	dst = binary.BigEndian.AppendUint16(dst, version)
	dst = append(dst, byte(kind), 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, body...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func encodeHello(h hello) []byte {
	b := make([]byte, 0, helloFixedLen+len(h.Endpoints)*endpointWireLen)
	b = binary.BigEndian.AppendUint64(b, h.Cluster)
	b = binary.BigEndian.AppendUint16(b, uint16(h.From))
	b = binary.BigEndian.AppendUint16(b, uint16(h.To))
	b = append(b, byte(len(h.Endpoints)))
	for _, e := range h.Endpoints {
		b = AppendEndpoint(b, e)
	}
	return b
}

// AppendEndpoint appends the 57-byte wire form of e to dst.
func AppendEndpoint(dst []byte, e rdma.Endpoint) []byte {
	dst = binary.BigEndian.AppendUint16(dst, e.Version)
	dst = binary.BigEndian.AppendUint64(dst, e.ClusterID)
	dst = binary.BigEndian.AppendUint16(dst, uint16(e.Node))
	dst = append(dst, byte(e.Plane))
	dst = append(dst, e.GID[:]...)
	dst = binary.BigEndian.AppendUint32(dst, e.QPN)
	dst = binary.BigEndian.AppendUint32(dst, e.PSN)
	dst = binary.BigEndian.AppendUint64(dst, e.Addr)
	dst = binary.BigEndian.AppendUint32(dst, e.RKey)
	return binary.BigEndian.AppendUint64(dst, e.Length)
}

// DecodeEndpoint decodes the wire form written by AppendEndpoint.
func DecodeEndpoint(b []byte) (rdma.Endpoint, error) {
	if len(b) != endpointWireLen {
		return rdma.Endpoint{}, fmt.Errorf("%w: endpoint is %d bytes, want %d", ErrBadHandshake, len(b), endpointWireLen)
	}
	var e rdma.Endpoint
	e.Version = binary.BigEndian.Uint16(b[0:])
	e.ClusterID = binary.BigEndian.Uint64(b[2:])
	e.Node = rdma.NodeID(binary.BigEndian.Uint16(b[10:]))
	e.Plane = rdma.Plane(b[12])
	copy(e.GID[:], b[13:29])
	e.QPN = binary.BigEndian.Uint32(b[29:])
	e.PSN = binary.BigEndian.Uint32(b[33:])
	e.Addr = binary.BigEndian.Uint64(b[37:])
	e.RKey = binary.BigEndian.Uint32(b[45:])
	e.Length = binary.BigEndian.Uint64(b[49:])
	return e, nil
}

func decodeHello(body []byte) (hello, error) {
	if len(body) < helloFixedLen {
		return hello{}, fmt.Errorf("%w: hello body is %d bytes, shorter than %d", ErrBadHandshake, len(body), helloFixedLen)
	}
	h := hello{
		Cluster: binary.BigEndian.Uint64(body[0:]),
		From:    rdma.NodeID(binary.BigEndian.Uint16(body[8:])),
		To:      rdma.NodeID(binary.BigEndian.Uint16(body[10:])),
	}
	n := int(body[12])
	rest := body[helloFixedLen:]
	if len(rest) != n*endpointWireLen {
		return hello{}, fmt.Errorf("%w: hello announces %d endpoints but carries %d bytes for them", ErrBadHandshake, n, len(rest))
	}
	for i := range n {
		e, err := DecodeEndpoint(rest[i*endpointWireLen : (i+1)*endpointWireLen])
		if err != nil {
			return hello{}, err
		}
		h.Endpoints = append(h.Endpoints, e)
	}
	return h, nil
}

// frame is one decoded frame.
type frame struct {
	version uint16
	kind    frameKind
	body    []byte
}

// readFrame reads one frame. It checks the magic before trusting the length
// and the checksum before returning, so garbage never reaches a decoder.
// A frame of another version is returned as is (its header layout is the
// same in every version); the caller decides.
func readFrame(r io.Reader) (frame, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, ioErr("frame header", err)
	}
	if string(hdr[:4]) != frameMagic {
		return frame{}, fmt.Errorf("%w: bad magic %q (not a mu bootstrap peer?)", ErrBadHandshake, hdr[:4])
	}
	f := frame{version: binary.BigEndian.Uint16(hdr[4:]), kind: frameKind(hdr[6])}
	n := binary.BigEndian.Uint32(hdr[8:])
	if n > maxBodyLen {
		return frame{}, fmt.Errorf("%w: %s frame body length %d exceeds %d", ErrBadHandshake, f.kind, n, maxBodyLen)
	}
	buf := make([]byte, frameHeaderLen+int(n)+frameTrailerLen)
	copy(buf, hdr[:])
	if _, err := io.ReadFull(r, buf[frameHeaderLen:]); err != nil {
		return frame{}, ioErr(f.kind.String()+" frame body", err)
	}
	end := frameHeaderLen + int(n)
	if got, want := binary.BigEndian.Uint32(buf[end:]), crc32.Checksum(buf[:end], castagnoli); got != want {
		return frame{}, fmt.Errorf("%w: %s frame checksum %08x, computed %08x", ErrBadHandshake, f.kind, got, want)
	}
	f.body = buf[frameHeaderLen:end]
	return f, nil
}

// ioErr classifies a read or write failure: a deadline is a timeout, a short
// read is a truncated handshake.
func ioErr(what string, err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: reading %s: %v", ErrHandshakeTimeout, what, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: connection closed in %s (truncated): %w", ErrBadHandshake, what, errHungUp)
	}
	return fmt.Errorf("rdma: bootstrap: %s: %w", what, err)
}

// Peering is what the bootstrap drives to set up the queue pairs shared with
// one peer. Each handshake is an attempt with its own queue pairs, named by
// the local endpoints Prepare returned; the bootstrap guarantees, per
// attempt:
//
//   - Prepare runs only after the peer's hello was validated (on the
//     listener) or before anything is sent (on the dialer);
//   - Commit runs only after both sides validated each other's endpoints;
//   - Activate runs only once both sides have committed: on the dialer
//     after the listener confirmed its Commit, on the listener after the
//     dialer confirmed its own and the listener's confirmation was sent;
//   - if the attempt ends without Activate succeeding, Abort runs for it;
//     Abort must release everything Prepare made for that attempt, and
//     nothing else.
//
// Attempts with the same peer may run concurrently (a stale or forged one
// must not hold up the real one): only Activate is serialized per peer.
// Until Activate, the queue pairs of the previous successful handshake stay
// in service; Activate replaces them. A backend without a separate
// activation step leaves Activate nil and puts the queue pairs in service in
// Commit.
type Peering struct {
	// Prepare creates a new set of local queue pairs for peer, one per
	// plane, beside any in service, and returns their endpoints. Version,
	// ClusterID and Node are filled in by the bootstrap.
	Prepare func(peer rdma.NodeID) ([]rdma.Endpoint, error)
	// Commit connects the queue pairs named by local to remote (RTR, then
	// RTS). local and remote are sorted by plane.
	Commit func(peer rdma.NodeID, local, remote []rdma.Endpoint) error
	// Activate, if set, puts the committed queue pairs named by local in
	// service for peer, replacing the ones in service.
	Activate func(peer rdma.NodeID, local []rdma.Endpoint) error
	// Abort releases the queue pairs named by local, which were prepared
	// and never activated.
	Abort func(peer rdma.NodeID, local []rdma.Endpoint)
}

// Config configures a Bootstrapper.
type Config struct {
	ClusterID uint64
	Self      rdma.NodeID
	// Peers are the other members. Only they may connect; the lower id of
	// each pair dials the higher.
	Peers   []rdma.NodeID
	Timeout time.Duration // bound on one handshake; 0 means DefaultHandshakeTimeout
	Peering Peering
	// OnInbound, if set, is told the outcome of every handshake a listener
	// ran (peer is the claimed id, meaningful only when err is nil or the
	// hello could be decoded). For logging.
	OnInbound func(remote net.Addr, peer rdma.NodeID, err error)

	// ServerTLS and ClientTLS, when set (both or neither), run every
	// handshake inside TLS: ServerTLS on the listener, ClientTLS(peer) on
	// the dialer. Both must authenticate the other side (mutual TLS).
	// PeerID names the node a verified TLS connection belongs to; a hello
	// that claims another id is refused, and so is a listener that is not
	// the node dialed. Nothing of the hello is read before the TLS
	// handshake succeeded.
	ServerTLS *tls.Config
	ClientTLS func(peer rdma.NodeID) *tls.Config
	PeerID    func(tls.ConnectionState) (rdma.NodeID, error)

	// MaxInbound bounds the handshakes a listener runs at once; a
	// connection beyond it is closed at once, before TLS. 0 means
	// DefaultMaxInbound.
	MaxInbound int
}

// DefaultMaxInbound bounds concurrent inbound handshakes when
// Config.MaxInbound is zero: far more than a cluster's peers
// redialing at once, few enough that a flood of idle connections costs
// little more than their sockets until the handshake timeout closes them.
const DefaultMaxInbound = 64

// maxAttemptsPerPeer bounds the handshakes with one peer in flight at once
// (each holds a prepared set of queue pairs): the real peer redialing beside
// a stale attempt fits; a flood of attempts does not make queue pairs.
const maxAttemptsPerPeer = 4

// ErrBusy: too many handshakes with this peer, or in all, are in flight.
var ErrBusy = errors.New("rdma: bootstrap: too many handshakes in flight")

// Bootstrapper connects a node's queue pairs with its peers over TCP.
//
// Direction: of each pair of nodes the lower id dials and the higher id
// listens, so every pair has exactly one handshake and no tie-breaking is
// needed; one handshake sets up the queue pairs of all planes between them.
// A node therefore runs Serve for the lower ids and Exchange (or ConnectAll)
// for the higher ones.
//
// Handshake (each step checks magic, checksum, version, cluster and ids):
//
//	dialer: Prepare, send hello(endpoints)
//	listener: validate, Prepare, send hello(endpoints)
//	dialer: validate, Commit, send commit
//	listener: Commit, send commit          (listener done)
//	dialer: receive commit                  (dialer done)
//
//	both: Activate                          (new queue pairs in service)
//
// Any failure sends a reject frame naming the reason when the connection
// still works, and runs Abort for the attempt on each side that had
// prepared: the queue pairs in service before are untouched, so a hello that
// is forged, replayed, or followed by a hang-up never cuts a working link.
// The one case left is a listener whose final commit frame is lost: the
// dialer aborts and keeps its old queue pairs while the listener activates
// new ones whose peer is gone; their first operation fails with
// ErrRetryExceeded, like a peer crash, and the dialer's retry replaces them.
type Bootstrapper struct {
	cfg     Config
	timeout time.Duration
	inbound chan struct{} // one token per inbound handshake in flight

	mu        sync.Mutex
	peerLocks map[rdma.NodeID]*sync.Mutex
	attempts  map[rdma.NodeID]int // handshakes in flight per peer
	connected map[rdma.NodeID][]rdma.Endpoint
	changed   chan struct{} // closed and replaced whenever connected changes
}

// New validates cfg.
func New(cfg Config) (*Bootstrapper, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("rdma: bootstrap config: timeout %v: must not be negative", cfg.Timeout)
	}
	if (cfg.ServerTLS == nil) != (cfg.ClientTLS == nil) || (cfg.ServerTLS != nil) != (cfg.PeerID != nil) {
		return nil, errors.New("rdma: bootstrap config: ServerTLS, ClientTLS and PeerID go together")
	}
	if cfg.Peering.Prepare == nil || cfg.Peering.Commit == nil || cfg.Peering.Abort == nil {
		return nil, errors.New("rdma: bootstrap config: peering: Prepare, Commit and Abort are all required")
	}
	if cfg.MaxInbound < 0 {
		return nil, fmt.Errorf("rdma: bootstrap config: max inbound %d: must not be negative", cfg.MaxInbound)
	}
	if cfg.MaxInbound == 0 {
		cfg.MaxInbound = DefaultMaxInbound
	}
	seen := map[rdma.NodeID]bool{}
	for i, p := range cfg.Peers {
		if p == cfg.Self {
			return nil, fmt.Errorf("rdma: bootstrap config: peers[%d]: %d is self", i, p)
		}
		if seen[p] {
			return nil, fmt.Errorf("rdma: bootstrap config: peers[%d]: %d listed twice", i, p)
		}
		seen[p] = true
	}
	b := &Bootstrapper{
		cfg:       cfg,
		timeout:   cfg.Timeout,
		inbound:   make(chan struct{}, cfg.MaxInbound),
		peerLocks: map[rdma.NodeID]*sync.Mutex{},
		attempts:  map[rdma.NodeID]int{},
		connected: map[rdma.NodeID][]rdma.Endpoint{},
		changed:   make(chan struct{}),
	}
	if b.timeout == 0 {
		b.timeout = DefaultHandshakeTimeout
	}
	b.cfg.Peers = slices.Clone(cfg.Peers)
	return b, nil
}

// Remote returns the endpoints peer committed with, sorted by plane.
func (b *Bootstrapper) Remote(peer rdma.NodeID) ([]rdma.Endpoint, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	eps, ok := b.connected[peer]
	return slices.Clone(eps), ok
}

func (b *Bootstrapper) setConnected(peer rdma.NodeID, remote []rdma.Endpoint) {
	b.mu.Lock()
	b.connected[peer] = remote
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *Bootstrapper) lockPeer(peer rdma.NodeID) func() {
	b.mu.Lock()
	l := b.peerLocks[peer]
	if l == nil {
		l = &sync.Mutex{}
		b.peerLocks[peer] = l
	}
	b.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// beginAttempt counts a handshake with peer in flight, or refuses one
// beyond maxAttemptsPerPeer. The returned end must be called.
func (b *Bootstrapper) beginAttempt(peer rdma.NodeID) (end func(), err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.attempts[peer] >= maxAttemptsPerPeer {
		return nil, fmt.Errorf("%w: %d with node %d", ErrBusy, b.attempts[peer], peer)
	}
	b.attempts[peer]++
	return func() {
		b.mu.Lock()
		b.attempts[peer]--
		b.mu.Unlock()
	}, nil
}

// activate puts an attempt's committed queue pairs in service: the one step
// serialized per peer, so two attempts that both completed replace the
// link one after the other and Remote names the one in service.
func (b *Bootstrapper) activate(peer rdma.NodeID, local, remote []rdma.Endpoint) error {
	unlock := b.lockPeer(peer)
	defer unlock()
	if b.cfg.Peering.Activate != nil {
		if err := b.cfg.Peering.Activate(peer, slices.Clone(local)); err != nil {
			return fmt.Errorf("rdma: bootstrap: activate with node %d: %w", peer, err)
		}
	}
	b.setConnected(peer, remote)
	return nil
}

func (b *Bootstrapper) isPeer(id rdma.NodeID) bool { return slices.Contains(b.cfg.Peers, id) }

// prepare runs Peering.Prepare and stamps and checks the result.
func (b *Bootstrapper) prepare(peer rdma.NodeID) ([]rdma.Endpoint, error) {
	eps, err := b.cfg.Peering.Prepare(peer)
	if err != nil {
		return nil, fmt.Errorf("rdma: bootstrap: prepare for node %d: %w", peer, err)
	}
	eps = slices.Clone(eps)
	for i := range eps {
		eps[i].Version = rdma.ProtocolVersion
		eps[i].ClusterID = b.cfg.ClusterID
		eps[i].Node = b.cfg.Self
	}
	if err := checkEndpoints(eps); err != nil {
		b.cfg.Peering.Abort(peer, eps)
		return nil, fmt.Errorf("rdma: bootstrap: prepare for node %d returned bad endpoints: %w", peer, err)
	}
	return sortByPlane(eps), nil
}

func sortByPlane(eps []rdma.Endpoint) []rdma.Endpoint {
	sort.Slice(eps, func(i, j int) bool { return eps[i].Plane < eps[j].Plane })
	return eps
}

// checkEndpoints requires one endpoint per plane with values a queue pair
// can have.
func checkEndpoints(eps []rdma.Endpoint) error {
	if len(eps) != int(rdma.NumPlanes) {
		return fmt.Errorf("%w: %d endpoints, want one per plane (%d)", ErrBadHandshake, len(eps), rdma.NumPlanes)
	}
	var have [rdma.NumPlanes]bool
	for i, e := range eps {
		switch {
		case e.Plane >= rdma.NumPlanes:
			return fmt.Errorf("%w: endpoints[%d].plane: %v is not a plane", ErrBadHandshake, i, e.Plane)
		case have[e.Plane]:
			return fmt.Errorf("%w: endpoints[%d].plane: %v given twice", ErrBadHandshake, i, e.Plane)
		case e.QPN < 2 || e.QPN >= 1<<24:
			// QP 0 and 1 are the management QPs; numbers are 24 bits.
			return fmt.Errorf("%w: endpoints[%d].qpn: %d is not an RC queue pair number", ErrBadHandshake, i, e.QPN)
		case e.PSN >= 1<<24:
			return fmt.Errorf("%w: endpoints[%d].psn: %d exceeds 24 bits", ErrBadHandshake, i, e.PSN)
		case e.Length == 0:
			return fmt.Errorf("%w: endpoints[%d].length: region is empty", ErrBadHandshake, i)
		case e.Addr+e.Length < e.Addr:
			return fmt.Errorf("%w: endpoints[%d].length: addr %#x + %d wraps", ErrBadHandshake, i, e.Addr, e.Length)
		}
		have[e.Plane] = true
	}
	return nil
}

// checkHello validates a peer's hello against what this side expects: from
// is the expected sender, or any configured peer when anyPeer is set.
func (b *Bootstrapper) checkHello(f frame, want rdma.NodeID, anyPeer bool) (hello, error) {
	if f.version != rdma.ProtocolVersion {
		return hello{}, fmt.Errorf("%w: peer speaks version %d, this node %d", ErrVersionMismatch, f.version, rdma.ProtocolVersion)
	}
	if f.kind != kindHello {
		return hello{}, fmt.Errorf("%w: expected a hello frame, got %s", ErrBadHandshake, f.kind)
	}
	h, err := decodeHello(f.body)
	if err != nil {
		return hello{}, err
	}
	if h.Cluster != b.cfg.ClusterID {
		return h, fmt.Errorf("%w: peer is in cluster %#x, this node in %#x", ErrForeignCluster, h.Cluster, b.cfg.ClusterID)
	}
	if h.To != b.cfg.Self {
		return h, fmt.Errorf("%w: node %d addressed node %d, this is node %d", ErrUnexpectedPeer, h.From, h.To, b.cfg.Self)
	}
	switch {
	case anyPeer && !b.isPeer(h.From):
		return h, fmt.Errorf("%w: node %d is not a configured peer of node %d", ErrUnexpectedPeer, h.From, b.cfg.Self)
	case anyPeer && h.From > b.cfg.Self:
		return h, fmt.Errorf("%w: node %d dialed node %d, but the lower id dials", ErrUnexpectedPeer, h.From, b.cfg.Self)
	case !anyPeer && h.From != want:
		return h, fmt.Errorf("%w: answered by node %d, expected node %d", ErrUnexpectedPeer, h.From, want)
	}
	for i, e := range h.Endpoints {
		switch {
		case e.Version != rdma.ProtocolVersion:
			return h, fmt.Errorf("%w: endpoints[%d].version: %d, this node %d", ErrVersionMismatch, i, e.Version, rdma.ProtocolVersion)
		case e.ClusterID != h.Cluster:
			return h, fmt.Errorf("%w: endpoints[%d].cluster: %#x, this node %#x", ErrForeignCluster, i, e.ClusterID, b.cfg.ClusterID)
		case e.Node != h.From:
			return h, fmt.Errorf("%w: endpoints[%d].node: %d in a hello from node %d", ErrUnexpectedPeer, i, e.Node, h.From)
		}
	}
	if err := checkEndpoints(h.Endpoints); err != nil {
		return h, err
	}
	h.Endpoints = sortByPlane(h.Endpoints)
	return h, nil
}

// expectCommit reads the peer's commit; a reject becomes its sentinel.
func expectCommit(conn net.Conn, peer rdma.NodeID) error {
	f, err := readFrame(conn)
	if err != nil {
		return err
	}
	switch {
	case f.kind == kindReject:
		return decodeReject(f, peer)
	case f.version != rdma.ProtocolVersion:
		return fmt.Errorf("%w: peer switched to version %d mid-handshake", ErrVersionMismatch, f.version)
	case f.kind != kindCommit || len(f.body) != 0:
		return fmt.Errorf("%w: expected commit from node %d, got %s with %d body bytes", ErrBadHandshake, peer, f.kind, len(f.body))
	}
	return nil
}

func decodeReject(f frame, peer rdma.NodeID) error {
	if len(f.body) < 3 || len(f.body) != 3+int(binary.BigEndian.Uint16(f.body[1:])) {
		return fmt.Errorf("%w: malformed reject from node %d", ErrBadHandshake, peer)
	}
	sentinel, ok := rejectSentinels[f.body[0]]
	if !ok {
		sentinel = ErrPeerRejected
	}
	return fmt.Errorf("%w (reported by node %d: %s)", sentinel, peer, f.body[3:])
}

// sendReject tells the peer which check failed, best effort: the
// connection may be broken. The message is the sentinel's alone: the
// peer may be anyone, and the details (this node's id and cluster, the
// ids it expected) are for the local log, not for it.
func sendReject(conn net.Conn, reason error) {
	code := rejectCode(reason)
	msg := rejectSentinels[code].Error()
	body := []byte{code}
	body = binary.BigEndian.AppendUint16(body, uint16(len(msg)))
	body = append(body, msg...)
	_, _ = conn.Write(appendFrame(nil, kindReject, body))
}

func writeFrame(conn net.Conn, kind frameKind, body []byte) error {
	if _, err := conn.Write(appendFrame(nil, kind, body)); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w: writing %s: %v", ErrHandshakeTimeout, kind, err)
		}
		return fmt.Errorf("rdma: bootstrap: write %s: %w", kind, err)
	}
	return nil
}

// bound applies the handshake deadline to conn and makes ctx cancellation
// interrupt blocked reads and writes. The returned stop must be called.
func (b *Bootstrapper) bound(ctx context.Context, conn net.Conn) (context.Context, func()) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return ctx, func() { stop(); cancel() }
}

// timeoutErr attributes an error to ctx when ctx ending caused it: a
// deadline becomes ErrHandshakeTimeout, a cancellation the context's error.
// An error that already says what the peer did wrong is kept, even if the
// deadline passed while it was being reported.
func timeoutErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	timedOut := errors.Is(err, ErrHandshakeTimeout)
	if !timedOut && isHandshakeSentinel(err) {
		return err
	}
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		if timedOut {
			return err
		}
		return fmt.Errorf("%w: %v", ErrHandshakeTimeout, err)
	}
	return fmt.Errorf("rdma: bootstrap: %w: %v", ctx.Err(), err)
}

func isHandshakeSentinel(err error) bool {
	for _, s := range []error{ErrBadHandshake, ErrVersionMismatch, ErrForeignCluster, ErrUnexpectedPeer, ErrPeerRejected, ErrHandshakeTimeout, ErrUnauthenticated} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// Exchange runs one handshake as the dialer with peer, which must have a
// higher id, at addr (host:port). It returns the peer's endpoints sorted by
// plane once both sides have committed. On error every queue pair Prepare
// made has been released through Abort.
func (b *Bootstrapper) Exchange(ctx context.Context, peer rdma.NodeID, addr string) ([]rdma.Endpoint, error) {
	if !b.isPeer(peer) {
		return nil, fmt.Errorf("%w: node %d is not a configured peer of node %d", ErrUnexpectedPeer, peer, b.cfg.Self)
	}
	if peer < b.cfg.Self {
		return nil, fmt.Errorf("%w: node %d must dial node %d, not the reverse (the lower id dials)", ErrUnexpectedPeer, peer, b.cfg.Self)
	}
	end, err := b.beginAttempt(peer)
	if err != nil {
		return nil, err
	}
	defer end()

	ctx, stop := context.WithTimeout(ctx, b.timeout)
	defer stop()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, timeoutErr(ctx, fmt.Errorf("rdma: bootstrap: dial node %d at %s: %w", peer, addr, err))
	}
	defer conn.Close()
	ctx, unbound := b.bound(ctx, conn)
	defer unbound()
	if b.cfg.ClientTLS != nil {
		tc := tls.Client(conn, b.cfg.ClientTLS(peer))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("node %d at %s: %w", peer, addr, timeoutErr(ctx, fmt.Errorf("%w: TLS: %v", ErrUnauthenticated, err)))
		}
		id, err := b.cfg.PeerID(tc.ConnectionState())
		if err != nil || id != peer {
			return nil, fmt.Errorf("%w: node %d at %s: certificate names node %d (%v)", ErrUnauthenticated, peer, addr, id, err)
		}
		conn = tc
	}

	// The link in service, if any, stays until this attempt activates.
	local, err := b.prepare(peer)
	if err != nil {
		return nil, err
	}
	remote, err := b.dialerSteps(conn, peer, local)
	if err == nil {
		err = b.activate(peer, local, remote)
	}
	if err != nil {
		b.cfg.Peering.Abort(peer, local)
		return nil, fmt.Errorf("node %d at %s: %w", peer, addr, timeoutErr(ctx, err))
	}
	return slices.Clone(remote), nil
}

func (b *Bootstrapper) dialerSteps(conn net.Conn, peer rdma.NodeID, local []rdma.Endpoint) ([]rdma.Endpoint, error) {
	if err := writeFrame(conn, kindHello, encodeHello(hello{Cluster: b.cfg.ClusterID, From: b.cfg.Self, To: peer, Endpoints: local})); err != nil {
		return nil, err
	}
	f, err := readFrame(conn)
	if err != nil {
		return nil, err
	}
	if f.kind == kindReject {
		return nil, decodeReject(f, peer)
	}
	h, err := b.checkHello(f, peer, false)
	if err != nil {
		sendReject(conn, err)
		return nil, err
	}
	if err := b.cfg.Peering.Commit(peer, slices.Clone(local), slices.Clone(h.Endpoints)); err != nil {
		err = fmt.Errorf("rdma: bootstrap: commit with node %d: %w", peer, err)
		sendReject(conn, err)
		return nil, err
	}
	if err := writeFrame(conn, kindCommit, nil); err != nil {
		return nil, err
	}
	if err := expectCommit(conn, peer); err != nil {
		return nil, err
	}
	return h.Endpoints, nil
}

// Serve runs the listener side of handshakes on ln until ctx ends, then
// closes ln, waits for handshakes in flight and returns nil. It returns
// early with an error if Accept fails for another reason. Outcomes of single
// handshakes go to OnInbound; a failed handshake does not stop Serve.
func (b *Bootstrapper) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			_ = ln.Close()
			return fmt.Errorf("rdma: bootstrap: accept on %s: %w", ln.Addr(), err)
		}
		select {
		case b.inbound <- struct{}{}:
		default:
			// Over the limit: no goroutine, no TLS, no answer.
			_ = conn.Close()
			if b.cfg.OnInbound != nil {
				b.cfg.OnInbound(conn.RemoteAddr(), 0, fmt.Errorf("%w: %d inbound", ErrBusy, cap(b.inbound)))
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-b.inbound }()
			peer, err := b.serveConn(ctx, conn)
			if b.cfg.OnInbound != nil {
				b.cfg.OnInbound(conn.RemoteAddr(), peer, err)
			}
		})
	}
}

func (b *Bootstrapper) serveConn(ctx context.Context, conn net.Conn) (rdma.NodeID, error) {
	defer conn.Close()
	ctx, unbound := b.bound(ctx, conn)
	defer unbound()
	authenticated := rdma.NodeID(0)
	if b.cfg.ServerTLS != nil {
		tc := tls.Server(conn, b.cfg.ServerTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return 0, timeoutErr(ctx, fmt.Errorf("%w: TLS: %v", ErrUnauthenticated, err))
		}
		id, err := b.cfg.PeerID(tc.ConnectionState())
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
		}
		conn, authenticated = tc, id
	}

	f, err := readFrame(conn)
	if err != nil {
		return authenticated, timeoutErr(ctx, err)
	}
	h, err := b.checkHello(f, 0, true)
	if err == nil && authenticated != 0 && h.From != authenticated {
		err = fmt.Errorf("%w: hello claims node %d, certificate names node %d", ErrUnexpectedPeer, h.From, authenticated)
	}
	if err != nil {
		sendReject(conn, err)
		return h.From, err
	}
	peer := h.From
	end, err := b.beginAttempt(peer)
	if err != nil {
		sendReject(conn, err)
		return peer, err
	}
	defer end()

	// The link in service, if any, stays until this attempt activates.
	local, err := b.prepare(peer)
	if err != nil {
		sendReject(conn, err)
		return peer, err
	}
	err = b.listenerSteps(conn, peer, local, h.Endpoints)
	if err == nil {
		err = b.activate(peer, local, h.Endpoints)
	}
	if err != nil {
		b.cfg.Peering.Abort(peer, local)
		return peer, timeoutErr(ctx, err)
	}
	return peer, nil
}

func (b *Bootstrapper) listenerSteps(conn net.Conn, peer rdma.NodeID, local, remote []rdma.Endpoint) error {
	if err := writeFrame(conn, kindHello, encodeHello(hello{Cluster: b.cfg.ClusterID, From: b.cfg.Self, To: peer, Endpoints: local})); err != nil {
		return err
	}
	if err := expectCommit(conn, peer); err != nil {
		return err
	}
	if err := b.cfg.Peering.Commit(peer, slices.Clone(local), slices.Clone(remote)); err != nil {
		err = fmt.Errorf("rdma: bootstrap: commit with node %d: %w", peer, err)
		sendReject(conn, err)
		return err
	}
	return writeFrame(conn, kindCommit, nil)
}

// errHungUp marks a handshake the peer closed mid-way: malformed, but most
// often the peer's own deadline passed (a loaded host), so worth a retry.
var errHungUp = errors.New("peer hung up")

// isPermanent reports errors that retrying the same peer cannot cure.
func isPermanent(err error) bool {
	if errors.Is(err, errHungUp) {
		return false
	}
	// ErrUnauthenticated is not: a peer restarting with renewed
	// credentials, or a spoofer racing the real one, must not end the
	// retries.
	return errors.Is(err, ErrForeignCluster) || errors.Is(err, ErrVersionMismatch) ||
		errors.Is(err, ErrUnexpectedPeer) || errors.Is(err, ErrBadHandshake)
}

// ConnectAll bootstraps with every peer in addrs (id -> bootstrap address):
// it dials the higher ids, retrying while they are not up yet, and waits for
// the lower ids to dial in through Serve, which must be running. It returns
// when all are connected, with their endpoints (a peer connected before the
// call is not dialed again), or when ctx ends or a dial
// fails permanently (foreign cluster, version, unexpected peer, garbage);
// then the error names the peers still missing and the connections made so
// far stay up (see Remote).
func (b *Bootstrapper) ConnectAll(ctx context.Context, addrs map[rdma.NodeID]string) (map[rdma.NodeID][]rdma.Endpoint, error) {
	for id := range addrs {
		if !b.isPeer(id) {
			return nil, fmt.Errorf("%w: addrs names node %d, not a configured peer of node %d", ErrUnexpectedPeer, id, b.cfg.Self)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		dialErr = map[rdma.NodeID]error{}
	)
	for id, addr := range addrs {
		if id < b.cfg.Self {
			continue
		}
		if _, ok := b.Remote(id); ok {
			continue // connected before; Exchange again only to replace it
		}
		wg.Go(func() {
			const backoffMin, backoffMax = 5 * time.Millisecond, 200 * time.Millisecond
			backoff := backoffMin
			for {
				_, err := b.Exchange(ctx, id, addr)
				if err == nil {
					return
				}
				errMu.Lock()
				dialErr[id] = err
				errMu.Unlock()
				if isPermanent(err) {
					cancel()
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, backoffMax)
			}
		})
	}
	// Wait until every peer is connected (dialed or dialed in).
	var missing []rdma.NodeID
	for {
		b.mu.Lock()
		missing = missing[:0]
		for id := range addrs {
			if _, ok := b.connected[id]; !ok {
				missing = append(missing, id)
			}
		}
		changed := b.changed
		b.mu.Unlock()
		if len(missing) == 0 || ctx.Err() != nil {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
		}
	}
	cancel()
	wg.Wait()

	out := map[rdma.NodeID][]rdma.Endpoint{}
	for id := range addrs {
		if eps, ok := b.Remote(id); ok {
			out[id] = eps
		}
	}
	if len(out) == len(addrs) {
		return out, nil
	}
	slices.Sort(missing)
	var why []string
	var first error
	for _, id := range missing {
		if _, ok := out[id]; ok {
			continue
		}
		if err := dialErr[id]; err != nil {
			why = append(why, fmt.Sprintf("node %d: %v", id, err))
			if first == nil || isPermanent(err) {
				first = err
			}
		} else {
			why = append(why, fmt.Sprintf("node %d: never dialed in", id))
		}
	}
	if first == nil || !isPermanent(first) {
		first = ErrHandshakeTimeout
	}
	return out, fmt.Errorf("rdma: bootstrap: node %d connected %d of %d peers: %w; %s",
		b.cfg.Self, len(out), len(addrs), first, strings.Join(why, "; "))
}

// Keep redials, until ctx ends, each peer in addrs that this node dials
// (the higher ids) whenever down(peer) reports its link lost at two checks
// in a row: a peer that restarted and lost its queue pairs, or one that
// never answered, not a connection its owner is resetting. down is asked
// every gap (from one goroutine per peer); redials of one peer are
// spaced by backoff: a redial that fails quickly, or a link found lost
// again within gap of its last redial, doubles the wait, up to
// backoff.MaxFactor times gap; a link that stayed up longer is redialed
// after gap again. Each redial builds the
// new queue pairs beside the old (see Peering), so one that fails costs the
// link in service nothing. report, if set, is told each redial's outcome.
// The lower ids dial this node themselves.
func (b *Bootstrapper) Keep(ctx context.Context, addrs map[rdma.NodeID]string, gap time.Duration, down func(rdma.NodeID) bool, report func(rdma.NodeID, error)) error {
	if gap <= 0 {
		return fmt.Errorf("rdma: bootstrap: keep: gap %v must be positive", gap)
	}
	for id := range addrs {
		if !b.isPeer(id) {
			return fmt.Errorf("%w: addrs names node %d, not a configured peer of node %d", ErrUnexpectedPeer, id, b.cfg.Self)
		}
	}
	var wg sync.WaitGroup
	start := time.Now()
	for id, addr := range addrs {
		if id < b.cfg.Self {
			continue
		}
		wg.Go(func() {
			var spacing backoff.Backoff
			tick := time.NewTicker(gap)
			defer tick.Stop()
			wasDown := false
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				now := int64(time.Since(start))
				isDown := down(id)
				lost := isDown && wasDown
				wasDown = isDown
				if !lost || !spacing.Broken(now) {
					continue
				}
				spacing.Record(now, int64(gap))
				_, err := b.Exchange(ctx, id, addr)
				if err != nil {
					// Still lost right after the redial: the next one waits
					// twice as long.
					spacing.Broken(int64(time.Since(start)))
				}
				if report != nil && ctx.Err() == nil {
					report(id, err)
				}
			}
		})
	}
	wg.Wait()
	return nil
}
