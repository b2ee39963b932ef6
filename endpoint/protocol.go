// Package endpoint is a node's client endpoint: the framed request/answer
// protocol, its decoders, a server that bounds what a client may cost
// (connections, idle and read deadlines, frame size), and the client.
//
// A frame is a 4-byte little-endian length of what follows, then a 1-byte
// type and the body. A connection carries one request at a time. The
// server closes the connection after answering CodeBusy (too many
// connections) or CodeTooLarge (a frame over its cap, whose body it does
// not read).
package endpoint

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/rdma"
)

// Request and answer types.
const (
	ReqPropose byte = 1 // body: the command
	ReqStatus  byte = 2 // body: empty
	ReqLog     byte = 3 // body: empty
	ReqRejoin  byte = 4 // body: u16 id of a restarted peer that waits to be dialed
	ReqTerms   byte = 5 // body: empty; the leader-change history alone
	// ReqTransfer asks the leader to hand leadership over. Body: u16 id
	// of the target, then u64 milliseconds the node may take.
	ReqTransfer byte = 6
	// ReqMember asks the leader to change the voters. Body: u8 1 (add) or
	// 2 (remove), u16 id of the member, u64 milliseconds the node may take.
	ReqMember byte = 7

	RespOK        byte = 0x81 // body: u64 index (propose), or JSON (status, log), or empty
	RespNotLeader byte = 0x82 // body: u16 leader, u8 known, then the leader's client address
	RespError     byte = 0x83 // body: u8 code, then a message
)

// Error codes in RespError.
const (
	CodeOther          byte = 0
	CodeUnknownOutcome byte = 1 // leadership lost after the write: resend
	CodeFenced         byte = 2
	CodeStopped        byte = 3 // not running yet, or shutting down
	CodeTooLarge       byte = 4
	CodeQueueFull      byte = 5
	CodeTimeout        byte = 6
	CodeBusy           byte = 7 // the node serves as many connections as it allows
	CodeRefused        byte = 8 // the client may not make this request
)

// HeaderBytes is the length prefix of every frame.
const HeaderBytes = 4

// Frame errors.
var (
	ErrFrameTooLarge = errors.New("endpoint: frame too large")
	ErrBadFrame      = errors.New("endpoint: malformed frame")
)

// growStep is how much of a long frame is allocated before its bytes have
// arrived: a length header alone must not make the reader allocate what
// it claims.
const growStep = 64 << 10

// WriteFrame writes one frame and flushes.
func WriteFrame(w *bufio.Writer, typ byte, body []byte) error {
	if uint64(len(body))+1 > 1<<32-1 {
		return fmt.Errorf("%w: %d body bytes", ErrFrameTooLarge, len(body))
	}
	var h [HeaderBytes + 1]byte
	binary.LittleEndian.PutUint32(h[:HeaderBytes], uint32(len(body)+1))
	h[HeaderBytes] = typ
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

// AppendFrame appends one frame to dst.
func AppendFrame(dst []byte, typ byte, body []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)+1))
	dst = append(dst, typ)
	return append(dst, body...)
}

// ReadFrame reads one frame of at most maxBytes (type byte included) into
// buf, which it grows as needed and returns for reuse. The length is
// checked before anything is allocated, and a long frame's buffer grows
// with the bytes that actually arrive.
func ReadFrame(r io.Reader, buf []byte, maxBytes int) (typ byte, body, reuse []byte, err error) {
	var h [HeaderBytes]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.LittleEndian.Uint32(h[:])
	if n < 1 {
		return 0, nil, buf, fmt.Errorf("%w: empty frame (no type byte)", ErrBadFrame)
	}
	if uint64(n) > uint64(maxBytes) {
		return 0, nil, buf, fmt.Errorf("%w: %d bytes, at most %d", ErrFrameTooLarge, n, maxBytes)
	}
	buf = buf[:0]
	for remain := int(n); remain > 0; {
		step := min(remain, growStep)
		if cap(buf)-len(buf) < step {
			nb := make([]byte, len(buf), len(buf)+max(step, min(remain, len(buf))))
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+step])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, buf, err
		}
		remain -= step
	}
	return buf[0], buf[1:], buf, nil
}

// RemoteError is a node's error answer, with the sentinel it matches.
type RemoteError struct {
	Code byte
	Msg  string
}

func (e *RemoteError) Error() string { return e.Msg }

// Is matches the consensus sentinel the node's answer stands for.
func (e *RemoteError) Is(t error) bool {
	switch e.Code {
	case CodeUnknownOutcome:
		return t == consensus.ErrLeadershipLost
	case CodeFenced:
		return t == consensus.ErrFenced
	case CodeStopped:
		return t == consensus.ErrStopped
	case CodeTooLarge:
		return t == consensus.ErrTooLarge
	case CodeQueueFull:
		return t == consensus.ErrQueueFull
	case CodeTimeout:
		return t == context.DeadlineExceeded
	}
	return false
}

// ErrorAnswer appends an error answer's body to out.
func ErrorAnswer(out []byte, code byte, msg string) (byte, []byte) {
	return RespError, append(append(out, code), msg...)
}

// NotLeaderAnswer appends a not-leader answer's body to out.
func NotLeaderAnswer(out []byte, leader rdma.NodeID, known bool, leaderAddr string) (byte, []byte) {
	out = binary.LittleEndian.AppendUint16(out, uint16(leader))
	k := byte(0)
	if known {
		k = 1
	}
	out = append(out, k)
	return RespNotLeader, append(out, leaderAddr...)
}

// NotLeader is a decoded not-leader answer.
type NotLeader struct {
	Leader rdma.NodeID
	Known  bool
	Addr   string // the leader's client address, when known
}

// Err converts to the consensus error.
func (n NotLeader) Err() error { return &consensus.NotLeaderError{Leader: n.Leader, Known: n.Known} }

// DecodeNotLeader decodes a not-leader answer's body.
func DecodeNotLeader(b []byte) (NotLeader, error) {
	if len(b) < 3 {
		return NotLeader{}, fmt.Errorf("%w: not-leader answer of %d bytes", ErrBadFrame, len(b))
	}
	if b[2] > 1 {
		return NotLeader{}, fmt.Errorf("%w: not-leader answer: known flag %d", ErrBadFrame, b[2])
	}
	return NotLeader{Leader: rdma.NodeID(binary.LittleEndian.Uint16(b)), Known: b[2] == 1, Addr: string(b[3:])}, nil
}

// decodeError turns an error answer into *RemoteError, and any other
// unexpected type into an error.
func decodeError(t byte, b []byte) error {
	if t == RespError {
		if len(b) < 1 {
			return fmt.Errorf("%w: empty error answer", ErrBadFrame)
		}
		return &RemoteError{b[0], string(b[1:])}
	}
	return fmt.Errorf("%w: unexpected answer type %#x", ErrBadFrame, t)
}

// DecodeProposeAnswer decodes the answer to ReqPropose: the committed
// index, or *consensus.NotLeaderError, or *RemoteError.
func DecodeProposeAnswer(t byte, b []byte) (consensus.Index, error) {
	switch t {
	case RespOK:
		if len(b) != 8 {
			return 0, fmt.Errorf("%w: propose answer of %d bytes", ErrBadFrame, len(b))
		}
		return consensus.Index(binary.LittleEndian.Uint64(b)), nil
	case RespNotLeader:
		nl, err := DecodeNotLeader(b)
		if err != nil {
			return 0, err
		}
		return 0, nl.Err()
	}
	return 0, decodeError(t, b)
}

// DecodeBodyAnswer decodes an answer that carries a body (JSON for status,
// log and terms; empty for rejoin and membership changes) and returns the
// body; an operation only the leader carries out may be answered by a
// *consensus.NotLeaderError.
func DecodeBodyAnswer(t byte, b []byte) ([]byte, error) {
	switch t {
	case RespOK:
		return b, nil
	case RespNotLeader:
		nl, err := DecodeNotLeader(b)
		if err != nil {
			return nil, err
		}
		return nil, nl.Err()
	}
	return nil, decodeError(t, b)
}

// DecodeTransferAnswer decodes the answer to ReqTransfer: nil once the
// target leads, or *consensus.NotLeaderError (the node asked does not
// lead), or *RemoteError.
func DecodeTransferAnswer(t byte, b []byte) error {
	_, err := DecodeBodyAnswer(t, b)
	return err
}

// EncodeRejoin is the body of ReqRejoin.
func EncodeRejoin(id rdma.NodeID) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(id)) }

// EncodeTransfer is the body of ReqTransfer.
func EncodeTransfer(to rdma.NodeID, timeoutMs uint64) []byte {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint16(nil, uint16(to)), timeoutMs)
}

// DecodeTransfer decodes the body of ReqTransfer.
func DecodeTransfer(b []byte) (to rdma.NodeID, timeoutMs uint64, err error) {
	if len(b) != 10 {
		return 0, 0, fmt.Errorf("%w: transfer body must be a 2-byte node id and an 8-byte timeout, got %d bytes", ErrBadFrame, len(b))
	}
	return rdma.NodeID(binary.LittleEndian.Uint16(b)), binary.LittleEndian.Uint64(b[2:]), nil
}

// EncodeMember is the body of ReqMember.
func EncodeMember(add bool, id rdma.NodeID, timeoutMs uint64) []byte {
	op := byte(2)
	if add {
		op = 1
	}
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint16([]byte{op}, uint16(id)), timeoutMs)
}

// DecodeMember decodes the body of ReqMember.
func DecodeMember(b []byte) (add bool, id rdma.NodeID, timeoutMs uint64, err error) {
	if len(b) != 11 || b[0] != 1 && b[0] != 2 {
		return false, 0, 0, fmt.Errorf("%w: member body must be an op (1 add, 2 remove), a 2-byte node id and an 8-byte timeout", ErrBadFrame)
	}
	return b[0] == 1, rdma.NodeID(binary.LittleEndian.Uint16(b[1:])), binary.LittleEndian.Uint64(b[3:]), nil
}

// DecodeRejoin decodes the body of ReqRejoin.
func DecodeRejoin(b []byte) (rdma.NodeID, error) {
	if len(b) != 2 {
		return 0, fmt.Errorf("%w: rejoin body must be a 2-byte node id, got %d bytes", ErrBadFrame, len(b))
	}
	return rdma.NodeID(binary.LittleEndian.Uint16(b)), nil
}
