package main

import (
	"go/build"
	"slices"
	"testing"
)

// The command is a shell over package node: the verbs backend and its
// binding are node's to wire, so no file here imports them.
func TestCommandImportsNoVerbsBackend(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, forbidden := range []string{"github.com/rdmaconsensus/mu/rdma/verbs", "github.com/rdmaconsensus/mu/cgo/verbs"} {
		for _, imports := range [][]string{pkg.Imports, pkg.TestImports, pkg.XTestImports} {
			if slices.Contains(imports, forbidden) {
				t.Errorf("cmd/mu imports %s; go through package node", forbidden)
			}
		}
	}
}
