package hwmon

import (
	"context"
	"os"
	"testing"
)

func TestTryHere(t *testing.T) {
	r, err := CollectOnce(context.Background(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	r.WriteText(os.Stdout)
}
