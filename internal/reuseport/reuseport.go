// Package reuseport opens TCP listeners that another process of the same user
// may bind beside (SO_REUSEPORT), so that a new server process can start on
// the port the old one still serves: the kernel spreads new connections over
// both until the old one closes its listener, then sends them all to the new
// one. Linux lets only processes of the same effective user share a port
// this way, and a port held by a listener without the option stays refused.
package reuseport

import (
	"context"
	"net"
)

// Listen listens on addr; with share, the socket carries SO_REUSEPORT (on
// Linux; elsewhere share is ignored and the port is held alone).
func Listen(network, addr string, share bool) (net.Listener, error) {
	if !share {
		return net.Listen(network, addr)
	}
	lc := net.ListenConfig{Control: control}
	return lc.Listen(context.Background(), network, addr)
}

// Supported reports whether share has an effect on this system.
func Supported() bool { return supported }
