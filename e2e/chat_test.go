package e2e

import (
	"fmt"
	"testing"
	"time"

	"chatserver/config"
)

// TestLegacyChat walks the legacy protocol as the seed clients use it, on both
// backends: online push, offline store and drain (per peer and all), several
// connections per account, online, announcements and heartbeats.
func TestLegacyChat(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, func(c *config.Config) { c.Broadcast.Allowed = []string{"carol"} })

			alice, drained := login(t, ts, "alice", "bob")
			if len(drained) != 0 {
				t.Fatalf("alice's first init pushed %v; want nothing", drained)
			}
			// bob offline: stored.
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"one"}`)
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"two 😀"}`)
			carol, _ := login(t, ts, "carol", "")
			carol.send(`{"flag":"msg","from":"carol","to":"bob","content":"from carol"}`)
			carol.sync()
			alice.sync()
			eventually(t, "3 rows for bob", func() bool { return ts.unsent("bob", "") == 3 })

			// bob inits with to=alice: only alice's, oldest first, legacy shape.
			bob, got := login(t, ts, "bob", "alice")
			if joined(contents(got)) != "one,two 😀" {
				t.Fatalf("bob's drain from alice = %v; want one, two 😀", got)
			}
			for _, f := range got {
				if f["from"] != "alice" || f["flag"] != nil {
					t.Fatalf("drained frame %v; want legacy {from, content}", f)
				}
			}
			eventually(t, "alice's rows marked sent", func() bool { return ts.unsent("bob", "alice") == 0 })
			if n := ts.unsent("bob", "carol"); n != 1 {
				t.Fatalf("carol's row unsent = %d; want 1 (init named alice)", n)
			}

			// bob online: pushed at once; a second tab gets it too, and init
			// without to drains the rest (carol's).
			bob2, got2 := login(t, ts, "bob", "")
			if joined(contents(got2)) != "from carol" {
				t.Fatalf("second tab's drain = %v; want carol's message", got2)
			}
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"live"}`)
			for i, c := range []*client{bob, bob2} {
				if f := c.next(5 * time.Second); f["content"] != "live" || f["from"] != "alice" {
					t.Fatalf("tab %d got %v; want the live message", i+1, f)
				}
			}

			// online
			alice.send(`{"flag":"online","to":"bob"}`)
			if f := alice.next(5 * time.Second); f["flag"] != "online" || f["online"] != true || f["to"] != "bob" {
				t.Fatalf("online bob = %v", f)
			}
			alice.send(`{"flag":"online","to":"nobody"}`)
			if f := alice.next(5 * time.Second); f["online"] != false {
				t.Fatalf("online nobody = %v", f)
			}

			// heartbeats
			alice.send(`{"type":"heart"}`)
			if f := alice.next(5 * time.Second); f["flag"] != "pong" {
				t.Fatalf("heart answered with %v", f)
			}

			// announcement to every connection, the sender's included.
			carol.send(`{"flag":"all","from":"carol","content":"maintenance at 2"}`)
			for i, c := range []*client{alice, bob, bob2, carol} {
				f := c.next(5 * time.Second)
				if f["content"] != "maintenance at 2" || f["from"] != "carol" || f["flag"] != "all" {
					t.Fatalf("client %d got %v; want the announcement", i, f)
				}
			}
		})
	}
}

// TestManyMessagesStayInOrder sends a burst to an online and an offline
// recipient and checks order and count on both paths.
func TestManyMessagesStayInOrder(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, nil)
			alice, _ := login(t, ts, "alice", "")
			bob, _ := login(t, ts, "bob", "")
			const n = 500
			for i := 0; i < n; i++ {
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": fmt.Sprint(i)})
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "dave", "content": fmt.Sprint(i)})
			}
			for i := 0; i < n; i++ {
				if f := bob.next(10 * time.Second); f["content"] != fmt.Sprint(i) {
					t.Fatalf("bob's message %d = %v; want %d", i, f, i)
				}
			}
			_, got := login(t, ts, "dave", "")
			if len(got) != n {
				t.Fatalf("dave drained %d; want %d", len(got), n)
			}
			for i, f := range got {
				if f["content"] != fmt.Sprint(i) {
					t.Fatalf("dave's message %d = %v", i, f)
				}
			}
		})
	}
}
