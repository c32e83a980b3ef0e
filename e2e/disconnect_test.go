package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestDisconnectAccount: POST /api/disconnect closes every connection of the
// account on the node with 4004 and the site's reason, and no other
// connection; what was in flight to them is not lost: what an acknowledging
// connection had not acknowledged, and what was sent after the close, comes at
// the next init, in order. Bad input is refused and closes nothing.
func TestDisconnectAccount(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, nil)
			tab1, _ := login(t, ts, "alice", "")
			tab2, _ := login(t, ts, "alice", "")
			phone := dial(t, ts.url)
			phone.send(`{"flag":"init","from":"alice","ack":true}`)
			phone.sync()
			bob, _ := login(t, ts, "bob", "")

			for _, bad := range []struct {
				body map[string]any
				code string
			}{
				{map[string]any{"account": ""}, "bad_field"},
				{map[string]any{"account": "alice", "reason": strings.Repeat("x", 124)}, "too_long"},
				{map[string]any{"account": "alice", "reason": "line\nbreak"}, "bad_field"},
			} {
				if code, out := ts.api("POST", "/api/disconnect", bad.body); code != 400 || errCode(out) != bad.code {
					t.Fatalf("disconnect %v: %d %v; want 400 %s", bad.body, code, out, bad.code)
				}
			}

			// In flight: pushed to every connection, not acknowledged by the phone.
			for i := 1; i <= 3; i++ {
				bob.sendJSON(map[string]string{"flag": "msg", "from": "bob", "to": "alice", "content": fmt.Sprint("m", i), "cid": fmt.Sprint("c", i)})
				if f := bob.next(5 * time.Second); f["status"] != "pushed" {
					t.Fatalf("ack of m%d: %v; want pushed", i, f)
				}
			}
			code, out := ts.api("POST", "/api/disconnect", map[string]string{"account": "alice", "reason": "account suspended"})
			if code != 200 || out["closed"] != float64(3) || out["announced"] != false {
				t.Fatalf("disconnect alice: %d %v; want 200 {closed:3, announced:false}", code, out)
			}
			for i, c := range []*client{tab1, tab2, phone} {
				ce, before := c.closed(5 * time.Second)
				if ce.Code != 4004 || ce.Text != "account suspended" {
					t.Fatalf("alice's connection %d closed with %d %q; want 4004 \"account suspended\"", i, ce.Code, ce.Text)
				}
				if joined(contents(before)) != "m1,m2,m3" {
					t.Fatalf("alice's connection %d got %v before the close; want m1,m2,m3", i, contents(before))
				}
			}
			eventually(t, "alice offline", func() bool { return !ts.online("alice") })
			bob.send(`{"flag":"msg","from":"bob","to":"alice","content":"m4","cid":"c4"}`)
			if f := bob.next(5 * time.Second); f["status"] != "stored" {
				t.Fatalf("ack of m4 after the disconnect: %v; want stored", f)
			}
			if got := bob.sync(); len(got) != 0 {
				t.Fatalf("bob got %v; his connection must not be touched", got)
			}

			// Nothing keeps alice out: her next init has what the phone had not
			// acknowledged, then what came after the close.
			again := dial(t, ts.url)
			again.send(`{"flag":"init","from":"alice","ack":true}`)
			if got := again.sync(); joined(contents(got)) != "m1,m2,m3,m4" {
				t.Fatalf("alice's init after the disconnect got %v; want m1,m2,m3,m4", contents(got))
			}

			// Without a reason the close carries the code's own text; an account
			// with no connection closes none.
			code, out = ts.api("POST", "/api/disconnect", map[string]string{"account": "alice"})
			if code != 200 || out["closed"] != float64(1) {
				t.Fatalf("second disconnect: %d %v; want closed 1", code, out)
			}
			if ce, _ := again.closed(5 * time.Second); ce.Code != 4004 || ce.Text != "disconnected by the site" {
				t.Fatalf("closed with %d %q; want 4004 \"disconnected by the site\"", ce.Code, ce.Text)
			}
			if code, out := ts.api("POST", "/api/disconnect", map[string]string{"account": "nobody"}); code != 200 || out["closed"] != float64(0) {
				t.Fatalf("disconnect of an account with no connection: %d %v; want closed 0", code, out)
			}
		})
	}
}

// TestClusterDisconnect: a disconnect asked of one node closes the account's
// connections on every node, with 4004 and the reason; other accounts stay;
// a message sent to the account afterwards, from another node, is stored and
// comes at its next init on either node.
func TestClusterDisconnect(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	onN1, _ := login(t, n1, "alice", "")
	onN2a, _ := login(t, n2, "alice", "")
	onN2b, _ := login(t, n2, "alice", "")
	carol, _ := login(t, n2, "carol", "")
	bob, _ := login(t, n1, "bob", "")
	eventually(t, "alice registered on both nodes", func() bool {
		rdb := redis.NewClient(&redis.Options{Addr: n1.cfg.Redis.Addr})
		defer rdb.Close()
		return rdb.HLen(context.Background(), n1.cfg.Redis.KeyPrefix+"acct:alice").Val() == 3
	})

	code, out := n1.api("POST", "/api/disconnect", map[string]string{"account": "alice", "reason": "signed out everywhere"})
	if code != 200 || out["closed"] != float64(1) || out["announced"] != true {
		t.Fatalf("disconnect on n1: %d %v; want 200 {closed:1, announced:true}", code, out)
	}
	for i, c := range []*client{onN1, onN2a, onN2b} {
		if ce, _ := c.closed(5 * time.Second); ce.Code != 4004 || ce.Text != "signed out everywhere" {
			t.Fatalf("alice's connection %d closed with %d %q; want 4004 \"signed out everywhere\"", i, ce.Code, ce.Text)
		}
	}
	if got := carol.sync(); len(got) != 0 {
		t.Fatalf("carol on n2 got %v; her connection must not be touched", got)
	}
	eventually(t, "alice offline on every node", func() bool { return !n1.online("alice") && !n2.online("alice") })
	bob.send(`{"flag":"msg","from":"bob","to":"alice","content":"after","cid":"a1"}`)
	if f := bob.next(5 * time.Second); f["status"] != "stored" {
		t.Fatalf("ack of the message after the disconnect: %v; want stored", f)
	}
	if _, got := login(t, n2, "alice", ""); joined(contents(got)) != "after" {
		t.Fatalf("alice's init on n2 after the disconnect got %v; want the message sent meanwhile", contents(got))
	}
}
