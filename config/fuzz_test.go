package config

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"

	"github.com/rdmaconsensus/mu/hwmon"
)

// FuzzParse parses arbitrary documents: nothing panics, every refusal
// wraps ErrConfig, and whatever is accepted is accepted by every component
// the node builds from it.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../cmd/mu/testdata/node1.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(baseConfig))
	f.Add([]byte(baseConfig + "detector:\n  score_max: 255\n  recover_above: 254\n"))
	f.Add([]byte(baseConfig + "hwmon:\n  probe_p99_warn_ratio: .nan\n"))
	f.Add([]byte(baseConfig + "allow_even_members: true\nclient:\n  max_connections: 1\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("peers: [{id: 1}, {id: 1}]\n"))
	f.Add([]byte(""))
	// No DNS from a fuzzer: names other than localhost do not resolve.
	old := lookupHost
	lookupHost = func(_ context.Context, host string) ([]string, error) {
		if host == "localhost" {
			return []string{"127.0.0.1", "::1"}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	f.Cleanup(func() { lookupHost = old })
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error does not wrap ErrConfig: %v", err)
			}
			return
		}
		cc := c.Consensus()
		if err := cc.Validate(); err != nil {
			t.Fatalf("accepted, but consensus refuses: %v", err)
		}
		hc := hwmon.DefaultConfig()
		c.ApplyHwmon(&hc)
		if err := hc.Validate(); err != nil {
			t.Fatalf("accepted, but hwmon refuses: %v", err)
		}
		_ = c.Self()
		_ = c.Warnings()
	})
}
