package config

import (
	"strings"
	"testing"

	"github.com/rdmaconsensus/mu/consensus"
	"github.com/rdmaconsensus/mu/wal"
)

func TestDurabilitySettings(t *testing.T) {
	rejects := []struct{ add, want string }{
		{"durability: fast\n", `durability: "fast" is not memory, async or sync`},
		{"durability: sync\n", "data_dir: required with durability sync"},
		{"data_dir: /var/lib/mu\n", "data_dir: only with durability async or sync"},
		{"initial_cluster_state: fresh\n", `initial_cluster_state: "fresh" is not "new" or "existing"`},
	}
	for _, tc := range rejects {
		_, err := Parse([]byte(baseConfig + tc.add))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %q", tc.add, err, tc.want)
		}
	}
	c, err := Parse([]byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cc := c.Consensus(); cc.Durability != consensus.DurabilityMemory || cc.NewCluster {
		t.Fatalf("defaults: durability %v, new cluster %v", cc.Durability, cc.NewCluster)
	}
	if s, err := c.DurableStorage(); s != nil || err != nil {
		t.Fatalf("memory mode opens storage %v, %v", s, err)
	}
	dir := t.TempDir()
	c, err = Parse([]byte(baseConfig + "durability: sync\ndata_dir: " + dir + "\ninitial_cluster_state: new\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); !strings.Contains(strings.Join(w, "\n"), "initial_cluster_state: new") {
		t.Errorf("no warning about initial_cluster_state new: %q", w)
	}
	cc := c.Consensus()
	if cc.Durability != consensus.DurabilitySync || !cc.NewCluster {
		t.Fatalf("durability %v, new cluster %v", cc.Durability, cc.NewCluster)
	}
	s, err := c.DurableStorage()
	if err != nil || s == nil {
		t.Fatalf("DurableStorage: %v, %v", s, err)
	}
	if err := s.Load(func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if lw := s.LossWindow(); lw != (wal.LossWindow{}) {
		t.Fatalf("loss window of an empty log: %+v", lw)
	}
}
