package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestSenderAcksAreDurable: on both backends, a "stored" ack arrives only once
// the row is committed (it is in the table the moment the ack is read), a
// "pushed" ack once the frame is on the recipient's connection; retries of a cid
// are acknowledged with the same id and delivered once; the ids travel with the
// message through the offline table to the drain.
func TestSenderAcksAreDurable(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, nil)
			alice, _ := login(t, ts, "alice", "")
			bob, _ := login(t, ts, "bob", "")
			ids := map[string]string{}
			for i := 0; i < 20; i++ {
				cid := fmt.Sprint("c", i)
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "carol", "content": cid, "cid": cid})
				ack := alice.next(5 * time.Second)
				if ack["flag"] != "ack" || ack["cid"] != cid || ack["status"] != "stored" {
					t.Fatalf("ack %d = %v; want stored", i, ack)
				}
				if n := ts.unsent("carol", "alice"); n != i+1 {
					t.Fatalf("after the stored ack for %s the table holds %d rows; want %d", cid, n, i+1)
				}
				ids[cid], _ = ack["id"].(string)
			}
			// A retry of c3 (say, after a reconnect): same ack, no second row.
			alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "carol", "content": "c3", "cid": "c3"})
			if ack := alice.next(5 * time.Second); ack["id"] != ids["c3"] || ack["status"] != "stored" {
				t.Fatalf("retry ack = %v; want the first one", ack)
			}
			if n := ts.unsent("carol", "alice"); n != 20 {
				t.Fatalf("a retried cid stored a second row: %d rows", n)
			}
			// Pushed.
			alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": "live", "cid": "p1"})
			ack := alice.next(5 * time.Second)
			if ack["status"] != "pushed" {
				t.Fatalf("ack for online bob = %v; want pushed", ack)
			}
			if f := bob.next(5 * time.Second); f["content"] != "live" || f["id"] != ack["id"] {
				t.Fatalf("bob got %v; want the message with the acked id %v", f, ack["id"])
			}
			// The ids come back with the drain.
			_, got := login(t, ts, "carol", "")
			if len(got) != 20 {
				t.Fatalf("carol drained %d; want 20", len(got))
			}
			for i, f := range got {
				cid := fmt.Sprint("c", i)
				if f["content"] != cid || f["id"] != ids[cid] {
					t.Fatalf("drained %d = %v; want %s with id %s", i, f, cid, ids[cid])
				}
			}
		})
	}
}
