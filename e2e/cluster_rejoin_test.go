package e2e

import (
	"fmt"
	"testing"
	"time"

	"chatserver/config"
	"chatserver/internal/faultproxy"
)

// TestClusterNodeBackFromRedisOutage: the recipient's node loses Redis for
// longer than its liveness lasts, so the sender's node takes the recipient for
// gone and stores what it sends (acknowledged "stored"). When Redis is back,
// the recipient, still connected to its node and never re-initialised, gets
// those stored messages first, then the ones sent after, each once, in order.
func TestClusterNodeBackFromRedisOutage(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 1)
	first := nodes[0]
	proxy, err := faultproxy.Start(first.cfg.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	n2 := startServer(t, "redis+mariadb", func(c *config.Config) {
		c.Node = "n2"
		c.Cluster.Enabled = true
		c.MySQL.DSN = first.cfg.MySQL.DSN
		c.Redis.KeyPrefix = first.cfg.Redis.KeyPrefix
		c.Redis.Addr = proxy.Addr()
	})

	alice, _ := login(t, first, "alice", "")
	carol, _ := login(t, n2, "carol", "")
	eventually(t, "carol seen from n1", func() bool { return first.online("carol") })
	send := func(i int) {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "carol", "content": fmt.Sprint(i), "cid": fmt.Sprint(i)})
	}
	send(0)
	if f := alice.next(5 * time.Second); f["status"] != "pushed" {
		t.Fatalf("ack before the outage: %v; want pushed", f)
	}

	proxy.Set(faultproxy.Blackhole, 0)
	t.Cleanup(func() { proxy.Set(faultproxy.Pass, 0) })
	eventually(t, "n2 taken for gone by n1 (its liveness expired)", func() bool { return !first.online("carol") })
	const stored = 5
	for i := 1; i <= stored; i++ {
		send(i)
		if f := alice.next(10 * time.Second); f["status"] != "stored" {
			t.Fatalf("ack %d while carol's node is cut off: %v; want stored", i, f)
		}
	}

	proxy.Set(faultproxy.Pass, 0)
	eventually(t, "carol seen from n1 again", func() bool { return first.online("carol") })
	const n = 10
	for i := stored + 1; i < n; i++ {
		send(i)
		// pushed, or stored when it came while carol's backlog was being read
		// again (held, then stored for that read): either way she gets it
		// after the stored ones, on this connection.
		if f := alice.next(10 * time.Second); f["status"] != "pushed" && f["status"] != "stored" {
			t.Fatalf("ack %d after the outage: %v; want pushed or stored", i, f)
		}
	}
	for i := 0; i < n; i++ {
		f, err := carol.read(10 * time.Second)
		if err != nil {
			t.Fatalf("carol got messages 0..%d, then: %v; want 0..%d in order, without a new init", i-1, err, n-1)
		}
		if f["content"] != fmt.Sprint(i) {
			t.Fatalf("carol's message %d = %v: out of order, repeated or missing", i, f)
		}
	}
	carol.none(500 * time.Millisecond)
}
