package e2e

import (
	"testing"
	"time"
)

// TestConnectionsPerAccount: with the default limits.connections_per_account
// (16), the 17th init of one account is refused with too_many_connections and
// closed 4005, while the 16 stay usable and other accounts are not counted;
// once one of the 16 closes, a new connection of the account gets in.
func TestConnectionsPerAccount(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, nil)
			var tabs []*client
			for i := 0; i < 16; i++ {
				c, _ := login(t, ts, "alice", "")
				tabs = append(tabs, c)
			}
			extra := dial(t, ts.url)
			extra.send(`{"flag":"init","from":"alice","cid":"x"}`)
			ce, before := extra.closed(5 * time.Second)
			if len(before) != 1 || before[0]["flag"] != "error" || before[0]["code"] != "too_many_connections" {
				t.Fatalf("17th init answered %v; want one too_many_connections error frame", before)
			}
			if ce.Code != 4005 || ce.Text != "too many connections for this account" {
				t.Fatalf("17th connection closed with %d %q; want 4005 \"too many connections for this account\"", ce.Code, ce.Text)
			}

			// The 16 still get every message; another account is not counted.
			bob, _ := login(t, ts, "bob", "")
			bob.send(`{"flag":"msg","from":"bob","to":"alice","content":"to every tab"}`)
			for i, c := range tabs {
				if f := c.next(5 * time.Second); f["content"] != "to every tab" {
					t.Fatalf("tab %d got %v", i, f)
				}
			}

			// A place freed by a close is taken again.
			_ = tabs[0].ws.Close()
			eventually(t, "a new connection of alice admitted after one closed", func() bool {
				c := dial(t, ts.url)
				defer c.ws.Close()
				c.send(`{"flag":"init","from":"alice"}`)
				c.send(`{"flag":"ping"}`)
				f := c.next(5 * time.Second)
				switch f["flag"] {
				case "pong":
					return true
				case "error":
					if f["code"] == "too_many_connections" {
						return false
					}
				}
				t.Fatalf("init after a close: %v", f)
				return false
			})
			if got := tabs[1].sync(); len(got) != 0 {
				t.Fatalf("an older tab got %v after the new connection came in; want nothing", got)
			}
		})
	}
}
