package main

// rdtsc reads the time-stamp counter, the clock perftest times with. In a
// TCG guest clock_gettime may fall back to a system call and an emulated
// HPET read costing microseconds, which would be charged to mu only.
//
//go:noescape
func rdtsc() uint64

const haveTSC = true
