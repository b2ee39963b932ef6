package bootstrap

import (
	"bytes"
	"errors"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

// seedHello is a well-formed hello from node 1 to node 2.
func seedHello() hello {
	var eps []rdma.Endpoint
	for p := range rdma.NumPlanes {
		var gid [16]byte
		gid[10], gid[11], gid[15] = 0xff, 0xff, 1
		eps = append(eps, rdma.Endpoint{Version: rdma.ProtocolVersion, ClusterID: 0x6d75, Node: 1, Plane: p, GID: gid,
			QPN: 0x101 + uint32(p), PSN: 0x1234, Addr: 0x7f0000000000, RKey: 0xabc1, Length: 1 << 20})
	}
	return hello{Cluster: 0x6d75, From: 1, To: 2, Endpoints: eps}
}

// FuzzBootstrapFrame feeds arbitrary bytes to the frame reader and every
// decoder behind it: nothing panics, a frame that passes is exactly what
// appendFrame would write, and a hello that decodes encodes back to the
// same body and is then either accepted or refused with a sentinel.
func FuzzBootstrapFrame(f *testing.F) {
	h := seedHello()
	f.Add(appendFrame(nil, kindHello, encodeHello(h)))
	f.Add(appendFrame(nil, kindCommit, nil))
	f.Add(appendFrame(nil, kindReject, append([]byte{rejectCluster, 0, 5}, "nope!"...)))
	f.Add(appendFrameVersion(nil, rdma.ProtocolVersion+1, kindHello, encodeHello(h)))
	f.Add(appendFrame(nil, kindHello, encodeHello(hello{Cluster: 1, From: 1, To: 2})))
	f.Add([]byte("MuBs\x00\x01\x01\x00\xff\xff\xff\xff"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{})
	b, err := New(Config{ClusterID: 0x6d75, Self: 2, Peers: []rdma.NodeID{1, 3},
		Peering: Peering{Prepare: func(rdma.NodeID) ([]rdma.Endpoint, error) { return nil, nil }, Commit: func(rdma.NodeID, []rdma.Endpoint, []rdma.Endpoint) error { return nil }, Abort: func(rdma.NodeID, []rdma.Endpoint) {}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		fr, err := readFrame(r)
		if err != nil {
			return
		}
		if len(fr.body) > maxBodyLen {
			t.Fatalf("frame body of %d bytes passed, cap %d", len(fr.body), maxBodyLen)
		}
		used := len(in) - r.Len()
		if re := appendFrameVersion(nil, fr.version, fr.kind, fr.body); !bytes.Equal(re, in[:used]) {
			// The reserved byte is not checked; everything else must match.
			if len(re) != used || !bytes.Equal(re[:7], in[:7]) || !bytes.Equal(re[8:used-4], in[8:used-4]) {
				t.Fatalf("frame re-encodes differently:\n in %x\nout %x", in[:used], re)
			}
		}
		if fr.kind == kindReject {
			if err := decodeReject(fr, 1); err == nil {
				t.Fatal("decodeReject returned nil")
			}
		}
		if h, err := decodeHello(fr.body); err == nil {
			if re := encodeHello(h); !bytes.Equal(re, fr.body) {
				t.Fatalf("hello re-encodes differently:\n in %x\nout %x", fr.body, re)
			}
		}
		if _, err := b.checkHello(fr, 0, true); err != nil && !isHandshakeSentinel(err) {
			t.Fatalf("checkHello error without a sentinel: %v", err)
		}
	})
}

// FuzzDecodeHello decodes arbitrary hello bodies and endpoints: no
// panic, round trips exact, errors are ErrBadHandshake.
func FuzzDecodeHello(f *testing.F) {
	f.Add(encodeHello(seedHello()))
	f.Add(encodeHello(hello{Cluster: 7, From: 3, To: 1}))
	f.Add(AppendEndpoint(nil, seedHello().Endpoints[0]))
	f.Add(make([]byte, helloFixedLen))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 255})
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := decodeHello(body)
		if err != nil {
			if !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("decodeHello error without ErrBadHandshake: %v", err)
			}
		} else if re := encodeHello(h); !bytes.Equal(re, body) {
			t.Fatalf("hello re-encodes differently:\n in %x\nout %x", body, re)
		}
		if e, err := DecodeEndpoint(body); err == nil {
			if re := AppendEndpoint(nil, e); !bytes.Equal(re, body) {
				t.Fatalf("endpoint re-encodes differently")
			}
			_ = checkEndpoints([]rdma.Endpoint{e})
		}
	})
}
