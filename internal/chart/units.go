package chart

// DurationUnit picks the unit for durations up to maxNs: µs below 2 ms, ms
// below 20 s, s above. Divide nanoseconds by perNs; name goes in the axis
// title.
func DurationUnit(maxNs float64) (perNs float64, name string) {
	switch {
	case maxNs < 2e6:
		return 1e3, "µs"
	case maxNs < 2e10:
		return 1e6, "ms"
	}
	return 1e9, "s"
}
