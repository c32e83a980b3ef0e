package server

import (
	"net"
	"sync"
)

// ipCounter counts open WebSocket connections per client address: the peer's,
// or the one a trusted proxy gave (realip.go, proxyproto.go). Behind a proxy
// that is not in server.trusted_proxies every client has the proxy's address.
type ipCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire counts one more connection from ip, unless that would pass max (0 =
// no limit).
func (c *ipCounter) acquire(ip string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[string]int)
	}
	if max > 0 && c.n[ip] >= max {
		return false
	}
	c.n[ip]++
	return true
}

func (c *ipCounter) release(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip] <= 1 {
		delete(c.n, ip)
		return
	}
	c.n[ip]--
}

func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
