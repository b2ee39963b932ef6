package sim

import "flag"

// The seed runner's flags, for this package's tests.
func init() { RegisterSeedFlags(flag.CommandLine) }
