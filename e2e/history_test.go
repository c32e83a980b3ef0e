package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"chatserver/config"
)

func historyOn(c *config.Config) { c.History.Enabled = "true" }

// historyAPI asks GET /api/history as account and returns the status and answer.
func (ts *testServer) historyAPI(q url.Values) (int, map[string]any) {
	ts.t.Helper()
	return ts.api("GET", "/api/history?"+q.Encode(), nil)
}

// messagesOf lists a page's messages' contents, and their ids.
func messagesOf(page map[string]any) (contents, ids []string) {
	list, _ := page["messages"].([]any)
	for _, m := range list {
		mm, _ := m.(map[string]any)
		c, _ := mm["content"].(string)
		id, _ := mm["id"].(string)
		contents, ids = append(contents, c), append(ids, id)
	}
	return contents, ids
}

// TestHistory: on both backends, one-to-one (live and offline) and group
// messages are kept once and read back a page at a time, oldest first, by the
// history frame and GET /api/history; a legacy client sees its frames
// unchanged; only the parties and members may read.
func TestHistory(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, historyOn)
			ts.mustAddMembers("team", []string{"alice", "bob"})
			alice, _ := login(t, ts, "alice", "")
			bob, _ := login(t, ts, "bob", "") // a legacy client: never asks for history
			mallory, _ := login(t, ts, "mallory", "")

			for i := range 5 {
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": fmt.Sprint("a", i)})
				f := bob.next(5 * time.Second)
				keys := make([]string, 0, len(f))
				for k := range f {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				if joined(keys) != "content,from,id" || f["content"] != fmt.Sprint("a", i) {
					t.Fatalf("bob's push %d = %v; want exactly from, content, id as before", i, f)
				}
			}
			bob.send(`{"flag":"msg","from":"bob","to":"alice","content":"b0"}`)
			alice.next(5 * time.Second)
			alice.send(`{"flag":"msg","from":"alice","to":"dave","content":"for dave offline"}`)
			alice.send(`{"flag":"group","from":"alice","to":"team","content":"g0"}`)
			bob.next(5 * time.Second)
			alice.sync()

			// Written by the batch writer: wait for all of it through the API.
			q := url.Values{"account": {"bob"}, "with": {"alice"}, "limit": {"200"}}
			eventually(t, "six messages in the alice-bob history", func() bool {
				_, out := ts.historyAPI(q)
				c, _ := messagesOf(out)
				return len(c) == 6
			})
			code, out := ts.historyAPI(q)
			if c, _ := messagesOf(out); code != http.StatusOK || joined(c) != "a0,a1,a2,a3,a4,b0" || out["more"] != false || out["with"] != "alice" {
				t.Fatalf("API page = %d %v", code, out)
			}
			eventually(t, "the offline message in the alice-dave history", func() bool {
				_, out := ts.historyAPI(url.Values{"account": {"dave"}, "with": {"alice"}})
				c, _ := messagesOf(out)
				return joined(c) == "for dave offline"
			})

			// The frame, paging back with before and limit.
			alice.send(`{"flag":"history","with":"bob","limit":4}`)
			page := alice.next(5 * time.Second)
			c, ids := messagesOf(page)
			if page["flag"] != "history" || page["with"] != "bob" || joined(c) != "a2,a3,a4,b0" || page["more"] != true {
				t.Fatalf("newest page = %v", page)
			}
			first, _ := page["messages"].([]any)[0].(map[string]any)
			last, _ := page["messages"].([]any)[3].(map[string]any)
			if first["from"] != "alice" || first["to"] != "bob" || last["from"] != "bob" || first["time"] == nil ||
				first["seq"].(float64) >= last["seq"].(float64) {
				t.Fatalf("page fields = %v ... %v", first, last)
			}
			alice.sendJSON(map[string]any{"flag": "history", "with": "bob", "limit": 4, "before": ids[0]})
			page = alice.next(5 * time.Second)
			if c, _ := messagesOf(page); joined(c) != "a0,a1" || page["more"] != false {
				t.Fatalf("older page = %v", page)
			}
			alice.send(`{"flag":"history","group":"team"}`)
			page = alice.next(5 * time.Second)
			if c, _ := messagesOf(page); page["group"] != "team" || joined(c) != "g0" {
				t.Fatalf("group page = %v", page)
			}

			// Only the parties and the members.
			mallory.send(`{"flag":"history","group":"team"}`)
			if f := mallory.next(5 * time.Second); f["code"] != "forbidden" {
				t.Fatalf("non-member's group history -> %v; want forbidden", f)
			}
			mallory.send(`{"flag":"history","with":"bob"}`) // her own conversation with bob: empty
			if f := mallory.next(5 * time.Second); f["flag"] != "history" || len(f["messages"].([]any)) != 0 {
				t.Fatalf("mallory's own history with bob = %v; want none of alice's", f)
			}
			mallory.sendJSON(map[string]any{"flag": "history", "with": "bob", "before": ids[0]})
			if f := mallory.next(5 * time.Second); f["code"] != "not_found" {
				t.Fatalf("another conversation's id as before -> %v; want not_found", f)
			}
			if code, out := ts.historyAPI(url.Values{"account": {"mallory"}, "group": {"team"}}); code != http.StatusForbidden {
				t.Fatalf("API group history for a non-member = %d %v; want 403", code, out)
			}
			for frame, code := range map[string]string{
				`{"flag":"history","with":"bob","group":"team"}`: "bad_field",
				`{"flag":"history"}`:                             "missing_field",
				`{"flag":"history","with":"bob","limit":500}`:    "bad_field",
				`{"flag":"history","with":"bob","limit":-1}`:     "bad_field",
				`{"flag":"history","with":{"x":1}}`:              "bad_field",
			} {
				alice.send(frame)
				if f := alice.next(5 * time.Second); f["code"] != code {
					t.Fatalf("%s -> %v; want %s", frame, f, code)
				}
			}
			stranger := dial(t, ts.url)
			stranger.send(`{"flag":"history","with":"bob"}`)
			if f := stranger.next(5 * time.Second); f["code"] != "not_initialized" {
				t.Fatalf("history before init -> %v; want not_initialized", f)
			}
			if code, out := ts.historyAPI(url.Values{"with": {"bob"}}); code != http.StatusBadRequest || errCode(out) != "missing_field" {
				t.Fatalf("API without account = %d %v", code, out)
			}
		})
	}
}

// TestHistoryOffWithMySQLByDefault: a drop-in beside the PHP site (MySQL, no
// history settings) creates no history table and says history is off.
func TestHistoryOffWithMySQLByDefault(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "redis+mariadb", nil)
	alice, _ := login(t, ts, "alice", "")
	alice.send(`{"flag":"history","with":"bob"}`)
	if f := alice.next(5 * time.Second); f["code"] != "unavailable" {
		t.Fatalf("history with MySQL and no setting -> %v; want unavailable", f)
	}
	var n int
	if err := ts.db().QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'app_message'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("app_message tables = %d, %v; want none", n, err)
	}
}

// TestHistoryClusterWritesOnce: with two nodes, each message is kept once, by
// the sender's node, whichever node delivers it.
func TestHistoryClusterWritesOnce(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2, historyOn)
	nodes[0].mustAddMembers("team", []string{"alice", "bob", "carol"})
	alice, _ := login(t, nodes[0], "alice", "")
	bob, _ := login(t, nodes[1], "bob", "")
	eventually(t, "bob seen from alice's node", func() bool { return nodes[0].online("bob") })
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"cross"}`)
	bob.next(5 * time.Second)
	bob.send(`{"flag":"msg","from":"bob","to":"alice","content":"back"}`)
	alice.next(5 * time.Second)
	alice.send(`{"flag":"group","from":"alice","to":"team","content":"to all"}`) // bob live on n2, carol offline
	bob.next(5 * time.Second)
	count := func() (rows, ids int) {
		if err := nodes[0].db().QueryRow("SELECT COUNT(*), COUNT(DISTINCT `msg_id`) FROM app_message").Scan(&rows, &ids); err != nil {
			t.Fatal(err)
		}
		return rows, ids
	}
	eventually(t, "three history rows", func() bool { r, _ := count(); return r >= 3 })
	time.Sleep(300 * time.Millisecond) // a second copy, if any node wrote one, would be in by now
	if rows, ids := count(); rows != 3 || ids != 3 {
		t.Fatalf("history rows = %d (%d ids); want 3, one per message", rows, ids)
	}
}

// TestHistoryRetention: the running server deletes rows past history.max_age
// (a conversation nobody writes to any more) and trims a conversation to its
// newest history.max_per_conversation, keeping the rest.
func TestHistoryRetention(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, func(c *config.Config) {
				historyOn(c)
				c.History.MaxAge = time.Hour
				c.History.MaxPerConversation = 3
				c.History.RetentionInterval = time.Second
			})
			old := time.Now().Add(-2 * time.Hour).Unix()
			if _, err := ts.db().Exec("INSERT INTO app_message (`conv`, `msg_id`, `from`, `to`, `content`, `addtime`) VALUES ('alice|carol', 'old1', 'alice', 'carol', 'old', ?)", old); err != nil {
				t.Fatal(err)
			}
			alice, _ := login(t, ts, "alice", "")
			for i := 1; i <= 5; i++ {
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": fmt.Sprint("n", i)})
			}
			alice.sync()
			page := func(with string) string {
				_, out := ts.historyAPI(url.Values{"account": {"alice"}, "with": {with}})
				c, _ := messagesOf(out)
				return joined(c)
			}
			eventually(t, "the old row deleted, the newest three of alice-bob kept", func() bool {
				return page("carol") == "" && page("bob") == "n3,n4,n5"
			})
		})
	}
}
