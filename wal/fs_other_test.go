//go:build !linux

package wal

func isTmpfs(string) bool { return false }
