package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"chatserver/config"
)

// TestBadInputOverTheWire sends what a broken or hostile client sends. Each
// gets an error frame on a connection that stays usable; the oversized frame
// gets close 1009; nothing reaches the bystander and nothing is stored.
func TestBadInputOverTheWire(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, func(c *config.Config) {
				c.Server.MaxFrameBytes = 1024
				c.Limits.MaxContentBytes = 0
			})
			bystander, _ := login(t, ts, "bob", "")
			mallory := dial(t, ts.url)
			frames := []struct{ frame, code string }{
				{`{"flag":"msg","from":"mallory","to":"bob","content":"before init"}`, "not_initialized"},
				{`not json`, "bad_json"},
				{`[1,2]`, "bad_frame"},
				{`{"flag":"teleport"}`, "unknown_flag"},
				{`{"flag":"init","from":["x"]}`, "bad_field"},
				{`{"flag":"init"}`, "missing_field"},
			}
			for _, f := range frames {
				mallory.send(f.frame)
				if got := mallory.next(5 * time.Second); got["flag"] != "error" || got["code"] != f.code {
					t.Fatalf("%s -> %v; want error %s", f.frame, got, f.code)
				}
			}
			if err := mallory.ws.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2}); err != nil {
				t.Fatal(err)
			}
			if got := mallory.next(5 * time.Second); got["code"] != "binary_frame" {
				t.Fatalf("binary frame -> %v; want error binary_frame", got)
			}
			mallory.send(`{"flag":"init","from":"mallory"}`)
			mallory.sync()
			mallory.send(`{"flag":"msg","from":"bob","to":"carol","content":"spoofed"}`)
			if got := mallory.next(5 * time.Second); got["code"] != "wrong_sender" {
				t.Fatalf("spoofed from -> %v; want wrong_sender", got)
			}
			mallory.send(`{"flag":"init","from":"bob"}`)
			if got := mallory.next(5 * time.Second); got["code"] != "wrong_sender" {
				t.Fatalf("re-init as bob -> %v; want wrong_sender", got)
			}
			if n := ts.unsent("carol", ""); n != 0 {
				t.Fatalf("spoofed message stored (%d rows)", n)
			}

			// Over the limit: close 1009, and only for this connection.
			mallory.send(`{"flag":"msg","from":"mallory","to":"bob","content":"` + strings.Repeat("x", 2000) + `"}`)
			_, err := mallory.read(5 * time.Second)
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 1009 {
				t.Fatalf("oversized frame -> %v; want close 1009", err)
			}
			// The bystander saw none of it and still chats.
			carol, _ := login(t, ts, "carol", "")
			carol.send(`{"flag":"msg","from":"carol","to":"bob","content":"still here"}`)
			if got := bystander.next(5 * time.Second); got["content"] != "still here" {
				t.Fatalf("bystander got %v; want carol's message (and nothing of mallory's)", got)
			}
		})
	}
}
