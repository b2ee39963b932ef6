package endpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/rdmaconsensus/mu/consensus"
)

// FuzzReadFrame reads arbitrary bytes as request frames, as the server
// does: nothing panics, no frame over the cap passes, and every frame
// that passes is exactly what AppendFrame writes.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, ReqPropose, []byte("buy 10 @ 99")))
	f.Add(AppendFrame(AppendFrame(nil, ReqStatus, nil), ReqLog, nil))
	f.Add(AppendFrame(nil, ReqRejoin, EncodeRejoin(3)))
	f.Add(binary.LittleEndian.AppendUint32(nil, 256<<20))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1, 0, 0})
	const maxBytes = 4097
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var buf []byte
		for {
			at := in[len(in)-r.Len():]
			typ, body, reuse, err := ReadFrame(r, buf, maxBytes)
			if err != nil {
				if errors.Is(err, ErrFrameTooLarge) && binary.LittleEndian.Uint32(at) <= maxBytes {
					t.Fatalf("frame within the cap refused: %v", err)
				}
				return
			}
			if len(body)+1 > maxBytes {
				t.Fatalf("frame of %d bytes passed a cap of %d", len(body)+1, maxBytes)
			}
			if got := AppendFrame(nil, typ, body); len(got) != len(body)+HeaderBytes+1 {
				t.Fatalf("re-encoded frame is %d bytes", len(got))
			}
			buf = reuse
		}
	})
}

// FuzzDecodeAnswer decodes arbitrary answers as the client does, and
// arbitrary rejoin bodies as the server does: nothing panics, and what
// decodes encodes back the same.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add(RespOK, binary.LittleEndian.AppendUint64(nil, 42))
	_, nl := NotLeaderAnswer(nil, 2, true, "127.0.0.1:7202")
	f.Add(RespNotLeader, nl)
	_, e := ErrorAnswer(nil, CodeFenced, "fenced")
	f.Add(RespError, e)
	f.Add(RespOK, []byte(`{"id":1}`))
	f.Add(byte(0x7f), []byte{})
	f.Add(RespNotLeader, []byte{1, 0, 2})
	f.Add(RespOK, EncodeMember(true, 4, 60_000))
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		idx, err := DecodeProposeAnswer(typ, body)
		if err == nil {
			if typ != RespOK || binary.LittleEndian.Uint64(body) != uint64(idx) {
				t.Fatalf("propose answer %#x %x decoded to %d", typ, body, idx)
			}
		}
		var nle *consensus.NotLeaderError
		if errors.As(err, &nle) && typ != RespNotLeader {
			t.Fatalf("not-leader error from answer type %#x", typ)
		}
		if n, err := DecodeNotLeader(body); err == nil {
			if _, re := NotLeaderAnswer(nil, n.Leader, n.Known, n.Addr); !bytes.Equal(re, body) {
				t.Fatalf("not-leader answer re-encodes differently: %x vs %x", re, body)
			}
		}
		if b, err := DecodeBodyAnswer(typ, body); err == nil && (typ != RespOK || !bytes.Equal(b, body)) {
			t.Fatalf("body answer %#x passed", typ)
		} else if errors.As(err, &nle) && typ != RespNotLeader {
			t.Fatalf("not-leader error from body answer type %#x", typ)
		}
		var re *RemoteError
		if _, err := DecodeBodyAnswer(typ, body); errors.As(err, &re) && (typ != RespError || re.Code != body[0]) {
			t.Fatalf("remote error %+v from %#x %x", re, typ, body)
		}
		if id, err := DecodeRejoin(body); err == nil && !bytes.Equal(EncodeRejoin(id), body) {
			t.Fatalf("rejoin body re-encodes differently")
		}
		if add, id, ms, err := DecodeMember(body); err == nil && !bytes.Equal(EncodeMember(add, id, ms), body) {
			t.Fatalf("member body %x re-encodes differently", body)
		}
		terr := DecodeTransferAnswer(typ, body)
		if (terr == nil) != (typ == RespOK) || errors.As(terr, &nle) && typ != RespNotLeader {
			t.Fatalf("transfer answer %#x %x decoded to %v", typ, body, terr)
		}
	})
}
