//go:build !linux

package reuseport

import "syscall"

const supported = false

// control leaves the socket as it is: SO_REUSEPORT's spreading of
// connections between processes is Linux's.
func control(_, _ string, _ syscall.RawConn) error { return nil }
