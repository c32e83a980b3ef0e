//go:build race

package server

import (
	"net"
	"sync"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
)

// nbio hands each accepted connection from its listener goroutine to a poller
// goroutine through epoll, a synchronisation the race detector cannot see, so
// every first read of a connection looks like a race inside nbio. Under -race
// only, a mutex released after the accept and acquired before every read makes
// that hand-off visible. Normal builds have no such cost (racesync_norace.go).
// It returns the hook for nbhttp's open hook, which the server installs with
// its own (the engine has one).
func raceSync(e *nbhttp.Engine) func(net.Conn) {
	var mu sync.Mutex
	// The TLS path builds the TLS connection and its parser after nbhttp's
	// open hook; nbio's own open hook runs later, just before the fd is polled.
	e.Engine.OnOpen(func(*nbio.Conn) { mu.Lock(); mu.Unlock() }) //nolint:staticcheck
	e.Engine.OnReadBufferAlloc(func(c *nbio.Conn) *[]byte {
		mu.Lock()
		mu.Unlock() //nolint:staticcheck
		return e.Engine.PollerBufferPtr(c)
	})
	return func(net.Conn) { mu.Lock(); mu.Unlock() } //nolint:staticcheck // an empty critical section is the point
}
