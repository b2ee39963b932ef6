package sim

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// register is a single integer register: input nil reads, an int writes.
var register = porcupine.Model{
	Init: func() any { return 0 },
	Step: func(state, input, output any) (bool, any) {
		if input != nil { // write
			return true, input
		}
		return output == nil || output == state, state
	},
	DescribeOperation: func(input, output any) string {
		if input != nil {
			return "write"
		}
		return "read"
	},
}

func TestHistoryLinearizable(t *testing.T) {
	var h History
	w := h.Invoke(1, 5, 0)
	r := h.Invoke(2, nil, 10)
	h.Return(r, 5, 20) // overlaps the write: may see it
	h.Return(w, nil, 30)
	lost := h.Invoke(1, 7, 40) // never returns: may or may not apply
	_ = lost
	r2 := h.Invoke(2, nil, 50)
	h.Return(r2, 7, 60)
	if err := h.Check(register, time.Second, ""); err != nil {
		t.Fatal(err)
	}
	if h.Len() != 4 || h.Pending() != 1 {
		t.Fatalf("len %d pending %d", h.Len(), h.Pending())
	}
}

func TestHistoryNotLinearizable(t *testing.T) {
	var h History
	w := h.Invoke(1, 5, 0)
	h.Return(w, nil, 10)
	r := h.Invoke(2, nil, 20) // after the write returned: must see 5
	h.Return(r, 0, 30)
	path := filepath.Join(t.TempDir(), "viz.html")
	err := h.Check(register, time.Second, path)
	if !errors.Is(err, ErrNotLinearizable) {
		t.Fatalf("stale read accepted: %v", err)
	}
	if st, serr := os.Stat(path); serr != nil || st.Size() == 0 {
		t.Fatalf("no visualisation: %v", serr)
	}
}
