package app

import (
	"context"
	"fmt"
	"net"
	"time"
)

// The node id beside a running process. Two processes that share Redis must
// not share a node id: each clears and rewrites the other's account-map
// entries and liveness key as its own. A process that starts on a port
// another process of ours still serves (a handover, README "Upgrades") is
// that process's successor: it takes the other of two ids, the configured
// one (default <hostname>:<port>) and that id with "~2" appended, so an
// upgrade needs no setting changed, and a node id left by a process that
// died is reused (and cleared) by a later start.

const (
	successorSuffix = "~2"
	// aliveWait bounds the wait for one of the two ids to be free: a process
	// killed a moment ago leaves its liveness key for up to its TTL (6 s).
	aliveWait = 8 * time.Second
	probeWait = 500 * time.Millisecond
)

// nodeBeside returns the node id this process takes: base, unless it starts
// beside another process (then the id of the two that no live process holds
// in Redis).
func (a *App) nodeBeside(ctx context.Context, base string, beside bool) (string, error) {
	if !beside {
		return base, nil
	}
	ids := []string{base, base + successorSuffix}
	deadline := time.Now().Add(aliveWait)
	for {
		var alive [2]bool
		for i, id := range ids {
			n, err := a.rdb.Exists(ctx, a.cfg.Redis.KeyPrefix+"alive:"+id).Result()
			if err != nil {
				// Redis is out: the process beside most likely has the
				// configured id (a first upgrade).
				a.log.Warn().Err(err).Str("node", ids[1]).Msg("another process serves server.addr and Redis does not answer; taking the second node id")
				return ids[1], nil
			}
			alive[i] = n > 0
		}
		switch {
		case alive[0] && !alive[1]:
			return ids[1], nil
		case alive[1] && !alive[0]:
			return ids[0], nil
		case !alive[0] && !alive[1]:
			return ids[1], nil // the process beside has not written its key: it has the first
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("another process serves server.addr %s, and both node ids %q and %q are alive in Redis: stop one, or set node", a.cfg.Server.Addr, ids[0], ids[1])
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// serving reports whether a process accepts connections at addr (an
// unspecified host means loopback; port 0 means none can).
func serving(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" || port == "" {
		return false
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), probeWait)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
