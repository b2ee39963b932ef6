package consensus

import (
	"flag"

	"github.com/rdmaconsensus/mu/sim"
)

// The seed runner's flags (-seed, -seeds, -seedbase), for this package's tests.
func init() { sim.RegisterSeedFlags(flag.CommandLine) }
