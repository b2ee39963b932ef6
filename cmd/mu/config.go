package main

import (
	"github.com/rdmaconsensus/mu/config"
	"github.com/rdmaconsensus/mu/consensus"
)

// The node configuration lives in package config; these names keep the
// command's code short.
type (
	Config       = config.Config
	PeerConfig   = config.PeerConfig
	Duration     = config.Duration
	HwmonConfig  = config.HwmonConfig
	ClientConfig = config.ClientConfig
)

// ErrConfig marks every configuration error, for errors.Is.
var ErrConfig = config.ErrConfig

// Poll modes.
const (
	PollSpin      = config.PollSpin
	PollSpinYield = config.PollSpinYield
	PollIdleSleep = config.PollIdleSleep
)

// LoadConfig reads, decodes and validates a config file: the one check
// both `mu check-config` and `mu node` run.
func LoadConfig(path string) (Config, error) { return config.Load(path) }

// ParseConfig decodes and validates a config.
func ParseConfig(data []byte) (Config, error) { return config.Parse(data) }

// DefaultConfig returns the defaults a file overrides.
func DefaultConfig() Config { return config.DefaultConfig() }

// consensusConfig derives the replica's settings from the node config.
func consensusConfig(c Config) consensus.Config { return c.Consensus() }
