package permissions

import (
	"errors"
	"strings"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

func TestWordRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		epoch uint64
		id    rdma.NodeID
	}{{1, 1}, {MaxEpoch, 65535}, {12345678, 7}, {1 << 40, 0}} {
		w := Word(tt.epoch, tt.id)
		e, id := DecodeWord(w)
		if e != tt.epoch || id != tt.id {
			t.Errorf("Word(%d, %d) = %#x decodes to %d, %d", tt.epoch, tt.id, w, e, id)
		}
		if w == 0 {
			t.Errorf("Word(%d, %d) is the empty word", tt.epoch, tt.id)
		}
	}
	// Larger epochs give larger words for the same requester, so a word
	// comparison orders requests.
	if Word(5, 3) <= Word(4, 3) || Word(5, 1) <= Word(4, 9) {
		t.Error("words do not order by epoch first")
	}
}

func TestMajority(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		if got := Majority(n); got != want {
			t.Errorf("Majority(%d) = %d, want %d", n, got, want)
		}
		// A requester with Majority(n)-1 grants plus itself has a quorum;
		// two disjoint sets of that size cannot exist.
		if 2*want <= n {
			t.Errorf("Majority(%d) = %d: two quorums could be disjoint", n, want)
		}
	}
}

func TestAreaBytesLayout(t *testing.T) {
	for n := 1; n <= 7; n++ {
		m := &Manager{members: make([]rdma.NodeID, n), area: 64}
		end := m.area + AreaBytes(n)
		seen := map[uint64]string{}
		add := func(off uint64, what string) {
			if off%8 != 0 || off < m.area || off+8 > end {
				t.Fatalf("n=%d: %s at %d outside [%d,%d) or unaligned", n, what, off, m.area, end)
			}
			if prev, ok := seen[off]; ok {
				t.Fatalf("n=%d: %s and %s share offset %d", n, what, prev, off)
			}
			seen[off] = what
		}
		for i := 0; i < n; i++ {
			add(m.reqSlot(i), "request slot")
			add(m.ackSlot(i), "ack slot")
			add(m.ackSource(i), "ack source")
		}
		add(m.reqSource(), "request source")
		if uint64(len(seen))*8 != AreaBytes(n) {
			t.Fatalf("n=%d: %d words used, area is %d bytes", n, len(seen), AreaBytes(n))
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		field string
		edit  func(*Config)
	}{
		{"PollIntervalNs", func(c *Config) { c.PollIntervalNs = 0 }},
		{"RequestTimeoutNs", func(c *Config) { c.RequestTimeoutNs = -1 }},
		{"RequestTimeoutNs", func(c *Config) { c.RequestTimeoutNs = c.PollIntervalNs - 1 }},
		{"RepairIntervalNs", func(c *Config) { c.RepairIntervalNs = -1 }},
	} {
		c := DefaultConfig()
		tt.edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Config."+tt.field) {
			t.Errorf("got %v, want ErrInvalidConfig naming Config.%s", err, tt.field)
		}
	}
}
