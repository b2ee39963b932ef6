//go:build !amd64

package main

import "time"

var tscEpoch = time.Now()

func rdtsc() uint64 { return uint64(time.Since(tscEpoch)) }

const haveTSC = false
