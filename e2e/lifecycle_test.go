package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"chatserver/config"
)

// TestIdleConnectionsClosed: a silent connection is closed after the idle
// timeout; one that sends heartbeats ({"type":"heart"}, {"flag":"ping"} or
// WebSocket pings) stays.
func TestIdleConnectionsClosed(t *testing.T) {
	t.Parallel()
	// 2 s leaves the heartbeats (every 300 ms) room for a loaded machine
	// running other tests alongside.
	ts := startServer(t, "embedded", func(c *config.Config) { c.Server.IdleTimeout = 2 * time.Second })
	silent, _ := login(t, ts, "silent", "")
	talker, _ := login(t, ts, "talker", "")
	pinger, _ := login(t, ts, "pinger", "")
	stop := time.After(4 * time.Second)
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-tick.C:
			talker.send(`{"type":"heart"}`)
			if f := talker.next(2 * time.Second); f["flag"] != "pong" {
				t.Fatalf("heart -> %v", f)
			}
			if err := pinger.ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
				t.Fatalf("ping: %v", err)
			}
		case <-stop:
			break loop
		}
	}
	var ce *websocket.CloseError
	if _, err := silent.read(3 * time.Second); !errors.As(err, &ce) || ce.Code != 4001 {
		t.Fatalf("silent connection after the idle timeout: %v; want close 4001 (idle timeout)", err)
	}
	talker.send(`{"flag":"ping"}`)
	if f := talker.next(2 * time.Second); f["flag"] != "pong" {
		t.Fatalf("talker closed although it sent heartbeats: %v", f)
	}
	pinger.send(`{"flag":"ping"}`)
	// gorilla answers pong frames for us; the reply to our app ping comes next.
	if f := pinger.next(2 * time.Second); f["flag"] != "pong" {
		t.Fatalf("pinger closed although it sent WebSocket pings: %v", f)
	}
}

// TestGracefulShutdown: on shutdown every client gets close 1001 and every
// message accepted for an offline recipient is in the table, none lost.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, nil)
			alice, _ := login(t, ts, "alice", "")
			const n = 2000
			for i := 0; i < n; i++ {
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "offline-bob", "content": fmt.Sprint(i)})
			}
			alice.sync() // every message accepted (handled) before the shutdown
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			closed := make(chan error, 1)
			go func() { _, err := alice.read(10 * time.Second); closed <- err }()
			if err := ts.close(ctx); err != nil {
				t.Fatal(err)
			}
			var ce *websocket.CloseError
			if err := <-closed; !errors.As(err, &ce) || ce.Code != 1001 {
				t.Fatalf("client saw %v; want close 1001", err)
			}
			if got := ts.unsent("offline-bob", "alice"); got != n {
				t.Fatalf("rows after shutdown = %d; want %d", got, n)
			}
		})
	}
}
