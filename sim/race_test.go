//go:build race

package sim

// The race detector slows the simulator about twentyfold; seed sweeps
// shrink accordingly (the simulator is single-goroutine, so race runs add
// little beyond what the plain run covers).
const raceEnabled = true
