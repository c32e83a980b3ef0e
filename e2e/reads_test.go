package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// readFrames sends a ping and returns the read frames that came before the pong.
func readFrames(c *client) []map[string]any {
	c.t.Helper()
	var out []map[string]any
	for _, f := range c.sync() {
		if f["flag"] == "read" {
			out = append(out, f)
		}
	}
	return out
}

// unreadOf asks GET /api/unread?by=conversation for account.
func (ts *testServer) unreadOf(account string) (int, map[string]any) {
	ts.t.Helper()
	return ts.api("GET", "/api/unread?"+url.Values{"account": {account}, "by": {"conversation"}}.Encode(), nil)
}

func total(out map[string]any) float64 { n, _ := out["total"].(float64); return n }

// convsOf lists the conversations of an answer as "with:unread:last content".
func convsOf(out map[string]any) []string {
	var s []string
	list, _ := out["conversations"].([]any)
	for _, c := range list {
		m, _ := c.(map[string]any)
		name, _ := m["with"].(string)
		if g, ok := m["group"].(string); ok {
			name = "g:" + g
		}
		last := ""
		if l, ok := m["last"].(map[string]any); ok {
			last, _ = l["content"].(string)
		}
		s = append(s, fmt.Sprintf("%s:%v:%s", name, m["unread"], last))
	}
	return s
}

// TestReadReceipts: on both backends, a read frame moves the reader's cursor
// (forward only), the peer hears it live, unread counts follow the cursor in
// the frame and the API, a new connection with no local state gets its
// conversation list, bad input changes nothing, and a legacy connection never
// sees a read frame.
func TestReadReceipts(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, historyOn)
			ts.mustAddMembers("team", []string{"alice", "bob", "carol"})
			alice, _ := login(t, ts, "alice", "")
			bob, _ := login(t, ts, "bob", "")
			legacy, _ := login(t, ts, "bob", "") // bob's second device, a legacy client
			mallory, _ := login(t, ts, "mallory", "")
			alice.send(`{"flag":"conversations"}`) // uses the read state: gets receipts
			if f := alice.next(5 * time.Second); f["flag"] != "conversations" || joined(convsOf(f)) != "g:team:0:" {
				t.Fatalf("alice's first conversation list = %v; want her group only, no message yet", f)
			}

			var ids []string
			for i := range 3 {
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": fmt.Sprint("m", i)})
				f := bob.next(5 * time.Second)
				legacy.next(5 * time.Second)
				ids = append(ids, f["id"].(string))
			}
			eventually(t, "three unread for bob", func() bool { _, out := ts.unreadOf("bob"); return total(out) == 3 })
			code, out := ts.unreadOf("bob")
			if code != http.StatusOK || joined(convsOf(out)) != "alice:3:" {
				t.Fatalf("bob's unread = %d %v", code, out)
			}

			bob.sendJSON(map[string]string{"flag": "read", "to": "alice", "id": ids[1]})
			if f := bob.next(5 * time.Second); f["flag"] != "read" || f["ok"] != true || f["id"] != ids[1] || f["to"] != "alice" {
				t.Fatalf("bob's answer = %v", f)
			}
			if f := alice.next(5 * time.Second); f["flag"] != "read" || f["from"] != "bob" || f["to"] != "alice" || f["id"] != ids[1] {
				t.Fatalf("alice's receipt = %v; want bob read up to %s", f, ids[1])
			}
			bob.send(`{"flag":"unread"}`)
			if f := bob.next(5 * time.Second); f["flag"] != "unread" || total(f) != 1 || joined(convsOf(f)) != "alice:1:" {
				t.Fatalf("bob's unread after reading two = %v", f)
			}

			// Bad input: a clear error, nothing changes, nobody hears of it.
			for _, c := range []struct {
				who   *client
				frame map[string]string
				code  string
			}{
				{bob, map[string]string{"flag": "read", "to": "alice", "id": ids[0]}, "bad_field"},     // backwards
				{bob, map[string]string{"flag": "read", "to": "alice", "id": "nosuchid"}, "not_found"}, // unknown
				{mallory, map[string]string{"flag": "read", "to": "alice", "id": ids[2]}, "not_found"}, // another conversation's
				{mallory, map[string]string{"flag": "read", "group": "team", "id": ids[2]}, "forbidden"},
				{bob, map[string]string{"flag": "read", "to": "alice"}, "missing_field"},
				{bob, map[string]string{"flag": "read", "id": ids[2]}, "missing_field"},
				{bob, map[string]string{"flag": "read", "to": "alice", "group": "team", "id": ids[2]}, "bad_field"},
			} {
				c.who.sendJSON(c.frame)
				if f := c.who.next(5 * time.Second); f["flag"] != "error" || f["code"] != c.code || f["message"] == "" {
					t.Fatalf("%v -> %v; want %s", c.frame, f, c.code)
				}
			}
			stranger := dial(t, ts.url)
			stranger.send(`{"flag":"read","to":"alice","id":"x"}`)
			if f := stranger.next(5 * time.Second); f["code"] != "not_initialized" {
				t.Fatalf("read before init -> %v", f)
			}
			if got := readFrames(alice); len(got) != 0 {
				t.Fatalf("alice heard of refused reads: %v", got)
			}
			if _, out := ts.unreadOf("bob"); total(out) != 1 {
				t.Fatalf("bob's unread after refused reads = %v; want 1 still", out)
			}
			bob.sendJSON(map[string]string{"flag": "read", "to": "alice", "id": ids[1]}) // where it is: fine, no receipt
			if f := bob.next(5 * time.Second); f["ok"] != true {
				t.Fatalf("reading the same message again -> %v", f)
			}
			if got := readFrames(alice); len(got) != 0 {
				t.Fatalf("a cursor that did not move sent receipts: %v", got)
			}

			// A reinstall: a new connection with nothing stored draws its list.
			carol, _ := login(t, ts, "carol", "")
			carol.send(`{"flag":"group","from":"carol","to":"team","content":"g0"}`)
			carol.sync()
			alice.next(5 * time.Second)
			bob.next(5 * time.Second)
			legacy.next(5 * time.Second)
			fresh, _ := login(t, ts, "bob", "")
			want := "g:team:1:g0,alice:1:m2"
			eventually(t, "bob's conversation list", func() bool {
				fresh.send(`{"flag":"conversations"}`)
				f := fresh.next(5 * time.Second)
				return joined(convsOf(f)) == want
			})
			code, out = ts.api("GET", "/api/conversations?account=bob", nil)
			if code != http.StatusOK || joined(convsOf(out)) != want {
				t.Fatalf("GET /api/conversations = %d %v; want %s", code, out, want)
			}
			list := out["conversations"].([]any)
			if read := list[1].(map[string]any)["read"]; read != ids[1] {
				t.Fatalf("bob's cursor with alice = %v; want %s", read, ids[1])
			}

			// The legacy connection got the messages and nothing else.
			for _, f := range legacy.sync() {
				t.Fatalf("legacy connection got %v", f)
			}
			if code, out := ts.api("GET", "/api/unread?account=bob", nil); code != http.StatusOK || out["unread"] == nil {
				t.Fatalf("GET /api/unread without by = %d %v; want the offline counts as before", code, out)
			}
			if code, out := ts.api("GET", "/api/conversations", nil); code != http.StatusBadRequest || errCode(out) != "missing_field" {
				t.Fatalf("GET /api/conversations without account = %d %v", code, out)
			}
			if code, out := ts.api("GET", "/api/unread?account=bob&by=sender", nil); code != http.StatusBadRequest || errCode(out) != "bad_field" {
				t.Fatalf("GET /api/unread with an unknown by = %d %v", code, out)
			}
		})
	}
}

// TestGroupReadReceiptsAreAggregated: three members read a group message;
// its sender hears how many have read it, in fewer frames than readers.
func TestGroupReadReceiptsAreAggregated(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, historyOn)
			members := []string{"alice", "bob", "carol", "dave"}
			ts.mustAddMembers("team", members)
			conns := map[string]*client{}
			for _, m := range members {
				conns[m], _ = login(t, ts, m, "")
			}
			alice := conns["alice"]
			alice.send(`{"flag":"unread"}`)
			alice.next(5 * time.Second)
			alice.send(`{"flag":"group","from":"alice","to":"team","content":"g0"}`)
			alice.send(`{"flag":"group","from":"alice","to":"team","content":"g1"}`)
			var last string
			for _, m := range members[1:] {
				conns[m].next(5 * time.Second)
				last = conns[m].next(5 * time.Second)["id"].(string)
			}
			for _, m := range members[1:] {
				conns[m].sendJSON(map[string]string{"flag": "read", "group": "team", "id": last})
			}
			for _, m := range members[1:] {
				if f := conns[m].next(5 * time.Second); f["ok"] != true {
					t.Fatalf("%s's read -> %v", m, f)
				}
			}
			var got []map[string]any
			for len(got) == 0 || got[len(got)-1]["count"] != float64(3) {
				f := alice.next(5 * time.Second)
				if f["flag"] != "read" || f["group"] != "team" || f["id"] != last {
					t.Fatalf("alice got %v; want the read count of %s", f, last)
				}
				got = append(got, f)
			}
			if len(got) >= 3 {
				t.Fatalf("alice got %d receipts for 3 readers: %v; want them counted together", len(got), got)
			}
			bob := conns["bob"]
			bob.send(`{"flag":"unread"}`)
			if f := bob.next(5 * time.Second); total(f) != 0 {
				t.Fatalf("bob's unread after reading the group = %v", f)
			}
		})
	}
}

// TestReadReceiptAcrossNodes: the peer connected to another node hears the
// receipt, and so does the reader's other device there; the read finds a
// message another node's writer kept.
func TestReadReceiptAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2, historyOn)
	alice, _ := login(t, nodes[0], "alice", "")
	bob, _ := login(t, nodes[1], "bob", "")
	bobPhone, _ := login(t, nodes[0], "bob", "")
	eventually(t, "bob seen from alice's node", func() bool { return nodes[0].online("bob") })
	for _, c := range []*client{alice, bobPhone} {
		c.send(`{"flag":"unread"}`)
		c.next(5 * time.Second)
	}
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"cross"}`)
	id := bob.next(5 * time.Second)["id"].(string)
	bobPhone.next(5 * time.Second)
	bob.sendJSON(map[string]string{"flag": "read", "to": "alice", "id": id})
	if f := bob.next(5 * time.Second); f["ok"] != true {
		t.Fatalf("bob's read on n2 -> %v", f)
	}
	if f := alice.next(5 * time.Second); f["flag"] != "read" || f["from"] != "bob" || f["id"] != id {
		t.Fatalf("alice on n1 got %v; want bob's receipt", f)
	}
	if f := bobPhone.next(5 * time.Second); f["flag"] != "read" || f["from"] != "bob" || f["to"] != "alice" || f["id"] != id {
		t.Fatalf("bob's other device on n1 got %v; want his own read, to clear its badge", f)
	}
	bobPhone.send(`{"flag":"unread"}`)
	if f := bobPhone.next(5 * time.Second); total(f) != 0 {
		t.Fatalf("bob's unread seen from n1 = %v; want 0", f)
	}
}

// TestReadStateOffWithoutHistory: with history off (MySQL, no setting) the
// new frames and calls say so and change nothing.
func TestReadStateOffWithoutHistory(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "redis+mariadb", nil)
	alice, _ := login(t, ts, "alice", "")
	for _, frame := range []string{`{"flag":"read","to":"bob","id":"x"}`, `{"flag":"unread"}`, `{"flag":"conversations"}`} {
		alice.send(frame)
		if f := alice.next(5 * time.Second); f["code"] != "unavailable" {
			t.Fatalf("%s with history off -> %v; want unavailable", frame, f)
		}
	}
	for _, path := range []string{"/api/conversations?account=alice", "/api/unread?account=alice&by=conversation"} {
		if code, out := ts.api("GET", path, nil); code != http.StatusServiceUnavailable || errCode(out) != "unavailable" {
			t.Fatalf("GET %s with history off = %d %v; want 503 unavailable", path, code, out)
		}
	}
	var n int
	if err := ts.db().QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'app\\_message%'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("app_message tables = %d, %v; want none", n, err)
	}
}
