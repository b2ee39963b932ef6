// Command mu runs and inspects mu nodes.
//
// This main is a placeholder until the command line (node, demo, bench,
// health, status) lands: it only checks a `mu node` config file.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "check-config" {
		fmt.Fprintln(os.Stderr, "usage: mu check-config FILE")
		os.Exit(2)
	}
	c, err := LoadConfig(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mu:", err)
		os.Exit(1)
	}
	for _, w := range c.Warnings() {
		fmt.Fprintln(os.Stderr, "mu: warning:", w)
	}
	fmt.Printf("%s: node %d of %d, cluster %#x: ok\n", os.Args[2], c.ID, len(c.Peers), c.ClusterID)
}
