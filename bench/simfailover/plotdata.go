package main

import (
	"encoding/json"
	"os"
)

// The failovers as `mu bench plot` reads them (cmd/mu/plotdata.go, kind
// "failover"): each configuration's failovers with their steps, so the
// simulator's figure is drawn by the same code as the one measured on a
// device, and the two can be compared step by step.

type plotData struct {
	Kind     string         `json:"kind"`
	Source   string         `json:"source"`
	Failover []failoverData `json:"failover"`
}

type failoverData struct {
	Nodes     int             `json:"nodes"`
	Fault     string          `json:"fault"` // SIGKILL or SIGSTOP, as mu bench failover names them
	Failovers []failoverPoint `json:"failovers"`
}

type failoverPoint struct {
	FailoverNs    int64 `json:"failover_ns"`
	DetectNs      int64 `json:"detect_ns"`
	PermissionNs  int64 `json:"permission_ns"`
	CatchUpNs     int64 `json:"catch_up_ns"` // prepare + recovery
	FirstCommitNs int64 `json:"first_commit_ns"`
	Complete      bool  `json:"complete"`
}

// faultSignal is the signal a fault stands for in mu bench failover: a
// crash is SIGKILL, a pause SIGSTOP.
func faultSignal(f faultKind) string {
	if f == faultPause {
		return "SIGSTOP"
	}
	return "SIGKILL"
}

// writePlotData writes the configurations run with the default detector
// (the Mu detector rows would repeat a group size and fault) to path.
func writePlotData(path string, configs []config, results []outcome) error {
	d := plotData{Kind: "failover", Source: "simulator (sim.DefaultConfig, the rxe profile), virtual time"}
	for ci, c := range configs {
		if c.mu {
			continue
		}
		fd := failoverData{Nodes: c.replicas, Fault: faultSignal(c.fault), Failovers: []failoverPoint{}}
		for _, s := range results[ci].samples {
			fd.Failovers = append(fd.Failovers, failoverPoint{FailoverNs: s.totalNs, DetectNs: s.detectionNs, PermissionNs: s.permNs,
				CatchUpNs: s.prepareNs + s.recoveryNs, FirstCommitNs: s.firstNs, Complete: true})
		}
		d.Failover = append(d.Failover, fd)
	}
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
