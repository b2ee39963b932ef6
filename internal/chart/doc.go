// Package chart draws the figures mu's commands write (failover steps,
// distributions, latency by percentile, a run's timeline of faults, leader
// and throughput) with gonum plot, as PNG or SVG chosen by the file's
// extension. Callers pass values already scaled to the unit they name in
// the axis title; DurationUnit picks one.
package chart
