package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"chatserver/config"
)

// drop kills a client's TCP connection without a close handshake, as a phone
// losing its network does.
func (c *client) drop() { _ = c.ws.UnderlyingConn().Close() }

// TestReceiverAcks: a connection that inits with "ack":true gets ids on every
// frame; what it has not acknowledged when its connection drops comes again at
// the next init, in order and with the same ids; what it acknowledged does not.
// Offline rows pushed to it stay unsent until acknowledged.
func TestReceiverAcks(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, nil)
			alice, _ := login(t, ts, "alice", "")
			bob := dial(t, ts.url)
			bob.send(`{"flag":"init","from":"bob","ack":true}`)
			bob.sync()
			ids := map[string]string{}
			for i := 1; i <= 5; i++ {
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": fmt.Sprint("m", i)})
				f := bob.next(5 * time.Second)
				ids[f["content"].(string)], _ = f["id"].(string)
			}
			bob.sendJSON(map[string]string{"flag": "ack", "id": ids["m2"]}) // m1 and m2
			bob.sync()
			bob.drop()
			time.Sleep(200 * time.Millisecond)
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"m6"}`)
			alice.sync()

			bob2 := dial(t, ts.url)
			bob2.send(`{"flag":"init","from":"bob","ack":true}`)
			got := bob2.sync()
			if joined(contents(got)) != "m3,m4,m5,m6" {
				t.Fatalf("after the drop bob got %v; want m3,m4,m5,m6", contents(got))
			}
			for _, f := range got[:3] {
				if f["id"] != ids[f["content"].(string)] {
					t.Fatalf("%v came back with another id than %s", f, ids[f["content"].(string)])
				}
			}
			// Not acknowledged yet: the rows stay unsent; a drop now and they come again.
			if n := ts.unsent("bob", ""); n != 4 {
				t.Fatalf("%d rows unsent before the ack; want 4", n)
			}
			bob2.sendJSON(map[string]string{"flag": "ack", "id": got[3]["id"].(string)})
			bob2.sync()
			eventually(t, "acked rows marked sent", func() bool { return ts.unsent("bob", "") == 0 })
		})
	}
}

// TestSlowConsumers: a client that stops reading cannot grow the server's
// memory or slow others: past max_unacked (acknowledging) or the write buffer
// (legacy) it is closed, and an acknowledging one gets back, at its next init,
// everything it had not acknowledged, in order.
func TestSlowConsumers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "embedded", func(c *config.Config) {
		c.Limits.MaxUnacked = 50
		c.Server.MaxFrameBytes = 16 << 10
		c.Limits.MaxContentBytes = 12 << 10
		c.Server.MaxWriteBufferBytes = 32 << 10
	})
	alice, _ := login(t, ts, "alice", "")
	carol, _ := login(t, ts, "carol", "")

	// Acknowledging, never reading: closed at 51 unacked; nothing lost.
	bob := dial(t, ts.url)
	bob.send(`{"flag":"init","from":"bob","ack":true}`)
	bob.sync()
	for i := 0; i < 100; i++ {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": fmt.Sprint(i)})
	}
	alice.sync()
	eventually(t, "bob closed and his messages stored", func() bool { return ts.unsent("bob", "") == 100 })
	bob2 := dial(t, ts.url)
	bob2.send(`{"flag":"init","from":"bob"}`)
	got := contents(bob2.sync())
	var want []string
	for i := 0; i < 100; i++ {
		want = append(want, fmt.Sprint(i))
	}
	if joined(got) != joined(want) {
		t.Fatalf("bob's next init got %d messages %v...; want 0..99 in order", len(got), got[:min(5, len(got))])
	}

	// Legacy, never reading: closed when its backlog passes the write buffer,
	// while carol's chat goes on.
	dave := dial(t, ts.url)
	dave.send(`{"flag":"init","from":"dave"}`)
	dave.sync()
	big := strings.Repeat("x", 10<<10)
	closed := false
	for i := 0; i < 3000 && !closed; i++ {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "dave", "content": big})
		if i%100 == 99 {
			start := time.Now()
			alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "carol", "content": "still fast"})
			if f := carol.next(5 * time.Second); f["content"] != "still fast" {
				t.Fatalf("carol got %v", f)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("a stalled reader slowed carol's message to %v", d)
			}
			alice.send(`{"flag":"online","to":"dave"}`)
			closed = alice.next(5 * time.Second)["online"] == false
		}
	}
	if !closed {
		t.Fatal("a client that never reads was never closed")
	}
}
