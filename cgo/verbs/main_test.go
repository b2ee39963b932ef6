package verbs

import (
	"fmt"
	"os"
	"testing"
)

// TestMain fails the run if any handle is left open.
func TestMain(m *testing.M) {
	code := m.Run()
	if n := LiveHandles(); n != 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d verbs handles leaked\n", n)
		code = 1
	}
	os.Exit(code)
}
