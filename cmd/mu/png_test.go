package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestFailoverPNGIsAValidImage(t *testing.T) {
	series := []failoverSeries{{Nodes: 3, Kind: faultKill, Faults: []faultResult{
		{FailoverNs: 900_000, Steps: breakdown{DetectNs: 500_000, PermissionNs: 100_000, CatchUpNs: 100_000, FirstCommitNs: 50_000, Complete: true}},
		{FailoverNs: 1_200_000},
	}}, {Nodes: 5, Kind: faultFreeze, Faults: []faultResult{{FailoverNs: 700_000}}}}
	path := filepath.Join(t.TempDir(), "f.png")
	if err := writeFailoverPNG(path, series); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// The first bar's detection segment is red at its bottom.
	r, g, b, _ := img.At(91, 389).RGBA()
	if r>>8 != 0xd6 || g>>8 != 0x27 || b>>8 != 0x28 {
		t.Errorf("bottom of the first bar is %02x%02x%02x, want the detection colour d62728", r>>8, g>>8, b>>8)
	}
}
