package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestPlotDataKeepsDefaultDetectorRowsWithSteps(t *testing.T) {
	configs := []config{{replicas: 5, fault: faultPause}, {replicas: 5, fault: faultPause, mu: true}}
	s := sample{totalNs: 500, detectionNs: 200, permNs: 150, prepareNs: 40, recoveryNs: 80, firstNs: 30}
	results := []outcome{{samples: []sample{s}}, {samples: []sample{s, s}}}
	path := filepath.Join(t.TempDir(), "f.json")
	if err := writePlotData(path, configs, results); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d plotData
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Kind != "failover" || len(d.Failover) != 1 {
		t.Fatalf("kind %q with %d series, want failover with the default detector's one", d.Kind, len(d.Failover))
	}
	f := d.Failover[0]
	if f.Nodes != 5 || f.Fault != "SIGSTOP" || len(f.Failovers) != 1 {
		t.Fatalf("series %+v", f)
	}
	if p := f.Failovers[0]; p.CatchUpNs != 120 || p.DetectNs != 200 || p.FailoverNs != 500 || !p.Complete {
		t.Errorf("failover %+v: catch-up must be prepare + recovery", p)
	}
}
