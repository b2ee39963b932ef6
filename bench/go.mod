module github.com/rdmaconsensus/mu/bench

go 1.26.0

replace github.com/rdmaconsensus/mu => ../

require (
	github.com/HdrHistogram/hdrhistogram-go v1.4.0 // indirect
	github.com/rdmaconsensus/mu v0.0.0-00010101000000-000000000000 // indirect
)
