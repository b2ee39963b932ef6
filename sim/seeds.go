package sim

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Seed runner flags, for every package whose tests use Seeds, once that
// package's tests call RegisterSeedFlags (from an init in a _test.go file,
// so no program that imports sim gets flags it did not ask for):
//
//	go test ./consensus -run TestX -seed=1234   replay one seed
//	go test ./consensus -run TestX -seeds=5000  run more seeds than the default
//	go test ./consensus -seedbase=99000         start the range elsewhere
//
// The environment variables MU_SEED, MU_SEEDS and MU_SEEDBASE do the same,
// with or without the flags.
var (
	seedFlag     string
	seedsFlag    int
	seedBaseFlag uint64 = 1
)

// RegisterSeedFlags adds -seed, -seeds and -seedbase to fs (normally
// flag.CommandLine, before the test binary parses it). Names already
// defined are left alone.
func RegisterSeedFlags(fs *flag.FlagSet) {
	if fs.Lookup("seed") == nil {
		fs.StringVar(&seedFlag, "seed", "", "sim: run only this seed (replays a failure)")
	}
	if fs.Lookup("seeds") == nil {
		fs.IntVar(&seedsFlag, "seeds", 0, "sim: number of seeds to run (0: the test's default)")
	}
	if fs.Lookup("seedbase") == nil {
		fs.Uint64Var(&seedBaseFlag, "seedbase", 1, "sim: first seed of the range")
	}
}

// maxSeedFailures stops a seed sweep after this many failing seeds, so one
// bug does not print a thousand replays.
const maxSeedFailures = 3

// Seeds runs fn once per seed, each as a subtest named "seed=N". By default
// it runs n seeds starting at -seedbase (1); -seeds overrides n; -seed (or
// MU_SEED) runs only that seed. A failing seed logs the exact command that
// replays it.
func Seeds(t *testing.T, n int, fn func(t *testing.T, seed uint64)) {
	t.Helper()
	if s, ok, err := seedSetting("seed", seedFlag, "MU_SEED"); err != nil {
		t.Fatal(err)
	} else if ok {
		runSeed(t, s, fn)
		return
	}
	if v, ok, err := seedSetting("seeds", strconv.Itoa(seedsFlag), "MU_SEEDS"); err != nil {
		t.Fatal(err)
	} else if ok && v > 0 {
		n = int(v)
	}
	base := seedBaseFlag
	if v, ok, err := seedSetting("seedbase", "", "MU_SEEDBASE"); err != nil {
		t.Fatal(err)
	} else if ok && !flagSet("seedbase") {
		base = v
	}
	failures := 0
	for i := range n {
		if !runSeed(t, base+uint64(i), fn) {
			failures++
			if failures == maxSeedFailures {
				t.Fatalf("stopping after %d failing seeds", failures)
			}
		}
	}
}

func runSeed(t *testing.T, seed uint64, fn func(t *testing.T, seed uint64)) bool {
	return t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("replay: %s", ReplayCommand(t, seed))
			}
		})
		fn(t, seed)
	})
}

// ReplayCommand is the command that reruns t's seed alone. t is the
// per-seed subtest (or any test below the one that called Seeds).
func ReplayCommand(t testing.TB, seed uint64) string {
	parts := strings.Split(t.Name(), "/")
	if len(parts) > 1 && strings.HasPrefix(parts[len(parts)-1], "seed=") {
		parts = parts[:len(parts)-1]
	}
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return fmt.Sprintf("go test ./%s -run '%s' -seed=%d", packageDir(), strings.Join(parts, "/"), seed)
}

// packageDir is the test's package directory relative to the module root
// (go test runs tests in the package directory).
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			rel, err := filepath.Rel(dir, wd)
			if err != nil || rel == "." {
				return "."
			}
			return filepath.ToSlash(rel)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "."
		}
		dir = parent
	}
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// seedSetting reads a flag (if it was given) or else an environment variable.
func seedSetting(name, flagValue, env string) (uint64, bool, error) {
	s := ""
	if flagSet(name) {
		s = flagValue
	} else if v, ok := os.LookupEnv(env); ok {
		s = v
	}
	if s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("sim: bad %s %q: %w", name, s, err)
	}
	return v, true, nil
}
