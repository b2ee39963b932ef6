package verbs

import (
	"errors"
	"strings"
	"testing"

	ibv "github.com/rdmaconsensus/mu/cgo/verbs"
	"github.com/rdmaconsensus/mu/rdma"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Self, good.Peers = 1, []rdma.NodeID{2, 3}
	if err := good.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := map[string]func(*Config){
		"Peers contains Self":   func(c *Config) { c.Peers = []rdma.NodeID{1, 2} },
		"Peers lists 2 twice":   func(c *Config) { c.Peers = []rdma.NodeID{2, 2} },
		"Port":                  func(c *Config) { c.Port = 0 },
		"GIDIndex":              func(c *Config) { c.GIDIndex = -2 },
		"RegionBytes":           func(c *Config) { c.RegionBytes = 0 },
		"SendQueueDepth":        func(c *Config) { c.SendQueueDepth = 100 },
		"TimeoutExp":            func(c *Config) { c.TimeoutExp = 32 },
		"RetryCount":            func(c *Config) { c.RetryCount = 8 },
		"RNRRetry":              func(c *Config) { c.RNRRetry = 9 },
		"InitialAccess":         func(c *Config) { c.InitialAccess[rdma.PlaneReplication] = rdma.AccessRemoteAtomic },
		"RegionAccess":          func(c *Config) { c.RegionAccess = 0x80 },
		"BackgroundWriteOffset": func(c *Config) { c.BackgroundWriteOffset, c.BackgroundWriteBytes = uint64(c.RegionBytes), 8 },
	}
	for name, mutate := range bad {
		c := good
		c.Peers = append([]rdma.NodeID(nil), good.Peers...)
		mutate(&c)
		err := c.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: Validate = %v", name, err)
		}
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: New = %v, want ErrConfig before touching a device", name, err)
		}
	}
}

func TestTransportTimeout(t *testing.T) {
	c := DefaultConfig()
	// 14 and 7: 8 attempts of 67 ms, the ~0.5 s measured on rxe.
	if got := c.TransportTimeoutNs(); got < 500e6 || got > 560e6 {
		t.Errorf("TransportTimeoutNs = %d", got)
	}
	for _, want := range []int64{1e6, 10e6, 100e6, 1e9} {
		e, r := timeoutFor(want)
		c := Config{TimeoutExp: e, RetryCount: r}
		got := c.TransportTimeoutNs()
		if got > want || got < want/4 {
			t.Errorf("timeoutFor(%d) = exp %d retry %d: %d ns", want, e, r, got)
		}
	}
}

func TestAccessMapping(t *testing.T) {
	cases := map[rdma.Access]ibv.Access{
		rdma.AccessNone:        0,
		rdma.AccessRemoteRead:  ibv.AccessRemoteRead,
		rdma.AccessRemoteWrite: ibv.AccessRemoteWrite,
		rdma.AccessAll:         ibv.AccessRemoteRead | ibv.AccessRemoteWrite | ibv.AccessRemoteAtomic,
	}
	for a, want := range cases {
		if got := toVerbsAccess(a); got != want {
			t.Errorf("toVerbsAccess(%v) = %#x, want %#x", a, got, want)
		}
	}
}

func TestCheckWR(t *testing.T) {
	const local, remote = 4096, 8192
	ok := []rdma.WorkRequest{
		{Op: rdma.OpWrite, LocalOffset: 4095, RemoteOffset: 0, Length: 1},
		{Op: rdma.OpRead, LocalOffset: 0, RemoteOffset: 4096, Length: 4096},
		{Op: rdma.OpCompareSwap, LocalOffset: 8, RemoteOffset: 8184, Length: 8},
		{Op: rdma.OpWrite, LocalOffset: 4096, RemoteOffset: 8192, Length: 0},
	}
	for _, w := range ok {
		if err := checkWR(&w, local, remote); err != nil {
			t.Errorf("%+v: %v", w, err)
		}
	}
	bad := []struct {
		w    rdma.WorkRequest
		want error
	}{
		{rdma.WorkRequest{Op: rdma.OpWrite, LocalOffset: 4095, Length: 2}, rdma.ErrOutOfBounds},
		{rdma.WorkRequest{Op: rdma.OpWrite, LocalOffset: 1 << 63, Length: 2}, rdma.ErrOutOfBounds},
		{rdma.WorkRequest{Op: rdma.OpRead, RemoteOffset: 8190, Length: 4}, rdma.ErrOutOfBounds},
		{rdma.WorkRequest{Op: rdma.OpCompareSwap, LocalOffset: 4, Length: 8}, rdma.ErrLocal},
		{rdma.WorkRequest{Op: rdma.OpCompareSwap, RemoteOffset: 12, Length: 8}, rdma.ErrLocal},
		{rdma.WorkRequest{Op: rdma.OpCompareSwap, Length: 4}, rdma.ErrLocal},
		{rdma.WorkRequest{Op: 9, Length: 4}, rdma.ErrLocal},
	}
	for _, b := range bad {
		if err := checkWR(&b.w, local, remote); !errors.Is(err, b.want) {
			t.Errorf("%+v: %v, want %v", b.w, err, b.want)
		}
	}
}
