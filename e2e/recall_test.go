package e2e

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"chatserver/config"
)

// loginRecall dials and inits as account asking for recall and edit frames
// ("recall":true), with init's other fields in extra; it returns the frames
// that came before the pong.
func loginRecall(t *testing.T, ts *testServer, account string, extra map[string]any) (*client, []map[string]any) {
	t.Helper()
	c := dial(t, ts.url)
	init := map[string]any{"flag": "init", "from": account, "recall": true}
	for k, v := range extra {
		init[k] = v
	}
	c.sendJSON(init)
	return c, c.sync()
}

// pageOf reads account's history with with (or of group, "g:" prefixed) through the API.
func (ts *testServer) pageOf(account, with string) []map[string]any {
	ts.t.Helper()
	q := url.Values{"account": {account}, "with": {with}, "limit": {"200"}}
	if len(with) > 2 && with[:2] == "g:" {
		q = url.Values{"account": {account}, "group": {with[2:]}, "limit": {"200"}}
	}
	code, out := ts.historyAPI(q)
	if code != 200 {
		ts.t.Fatalf("history of %s with %s: %d %v", account, with, code, out)
	}
	var msgs []map[string]any
	for _, m := range out["messages"].([]any) {
		msgs = append(msgs, m.(map[string]any))
	}
	return msgs
}

// byID finds the message id in a page.
func byID(page []map[string]any, id string) map[string]any {
	for _, m := range page {
		if m["id"] == id {
			return m
		}
	}
	return nil
}

// TestRecall: on both backends, a sender takes back its message: a recipient
// connected with "recall":true gets the recall frame now, one that was away
// gets it at its next init, a legacy connection never gets it, history shows
// it recalled; a copy still unsent offline is gone, so that even a legacy
// recipient never sees it; refusals (not the sender, unknown id, bad input)
// change nothing.
func TestRecall(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, historyOn)
			ts.mustAddMembers("team", []string{"alice", "bob", "carol"})
			alice, _ := login(t, ts, "alice", "")
			bob, _ := loginRecall(t, ts, "bob", nil)
			carol, _ := login(t, ts, "carol", "") // legacy: never asked for recall frames

			// Live, one to one.
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"oops"}`)
			id := bob.next(5 * time.Second)["id"].(string)
			alice.sendJSON(map[string]any{"flag": "recall", "to": "bob", "id": id, "cid": "r1"})
			if f := alice.next(5 * time.Second); f["flag"] != "recall" || f["ok"] != true || f["id"] != id || f["cid"] != "r1" {
				t.Fatalf("alice's answer = %v", f)
			}
			if f := bob.next(5 * time.Second); f["flag"] != "recall" || f["from"] != "alice" || f["id"] != id || len(f) != 3 {
				t.Fatalf("bob got %v; want exactly the recall frame", f)
			}
			if m := byID(ts.pageOf("bob", "alice"), id); m == nil || m["recalled"] != true || m["content"] != "" {
				t.Fatalf("history of the recalled message = %v", m)
			}
			// The conversation list shows its newest message recalled.
			bob.send(`{"flag":"conversations"}`)
			if f := bob.next(5 * time.Second); f["flag"] != "conversations" {
				t.Fatalf("bob's conversations answer = %v", f)
			} else if convs, _ := f["conversations"].([]any); len(convs) == 0 {
				t.Fatalf("bob's conversations = %v; want the one with alice", f)
			} else if last, _ := convs[0].(map[string]any)["last"].(map[string]any); last["id"] != id || last["recalled"] != true || last["content"] != "" {
				t.Fatalf("the conversation's last message = %v; want %s recalled", last, id)
			}

			// Refusals: nothing changes.
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"stays"}`)
			stays := bob.next(5 * time.Second)["id"].(string)
			for frame, code := range map[string]string{
				`{"flag":"recall","to":"alice","id":"` + stays + `"}`:                "forbidden",     // bob recalling alice's
				`{"flag":"recall","to":"alice","id":"nope"}`:                         "not_found",     // no such message
				`{"flag":"recall","to":"carol","id":"` + stays + `"}`:                "not_found",     // another conversation
				`{"flag":"recall","to":"alice"}`:                                     "missing_field", // no id
				`{"flag":"recall","id":"` + stays + `"}`:                             "missing_field", // no conversation
				`{"flag":"recall","to":"alice","group":"team","id":"x"}`:             "bad_field",
				`{"flag":"edit","to":"alice","id":"` + stays + `"}`:                  "missing_field", // no content
				`{"flag":"recall","from":"alice","to":"alice","id":"` + stays + `"}`: "wrong_sender",
			} {
				bob.send(frame)
				if f := bob.next(5 * time.Second); f["flag"] != "error" || f["code"] != code {
					t.Fatalf("%s -> %v; want %s", frame, f, code)
				}
			}
			if m := byID(ts.pageOf("alice", "bob"), stays); m == nil || m["recalled"] != nil || m["content"] != "stays" {
				t.Fatalf("refused recalls changed %v", m)
			}

			// A group: bob gets it with the group, carol (legacy) nothing.
			alice.send(`{"flag":"group","from":"alice","to":"team","content":"g-oops"}`)
			gid := bob.next(5 * time.Second)["id"].(string)
			carol.next(5 * time.Second)
			alice.sendJSON(map[string]any{"flag": "recall", "group": "team", "id": gid})
			if f := alice.next(5 * time.Second); f["ok"] != true {
				t.Fatalf("group recall answer = %v", f)
			}
			if f := bob.next(5 * time.Second); f["flag"] != "recall" || f["group"] != "team" || f["id"] != gid {
				t.Fatalf("bob got %v", f)
			}
			if got := carol.sync(); len(got) != 0 {
				t.Fatalf("legacy carol got %v; want nothing", got)
			}
			if m := byID(ts.pageOf("carol", "g:team"), gid); m == nil || m["recalled"] != true {
				t.Fatalf("group history = %v", m)
			}

			// Away: bob leaves, alice recalls what he had, bob comes back.
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"seen then gone"}`)
			seen := bob.next(5 * time.Second)["id"].(string)
			bob.ws.Close()
			eventually(t, "bob offline", func() bool { return !ts.online("bob") })
			alice.sendJSON(map[string]any{"flag": "recall", "to": "bob", "id": seen})
			if f := alice.next(5 * time.Second); f["ok"] != true {
				t.Fatalf("recall while bob is away = %v", f)
			}
			legacyBob, got := login(t, ts, "bob", "") // a legacy client of bob's: nothing new
			if len(got) != 0 {
				t.Fatalf("bob's legacy init got %v; want nothing", got)
			}
			legacyBob.ws.Close()
			_, got = loginRecall(t, ts, "bob", nil)
			if len(got) != 1 || got[0]["flag"] != "recall" || got[0]["id"] != seen {
				t.Fatalf("bob's init got %v; want the recall he missed", got)
			}
			_, got = loginRecall(t, ts, "bob", nil)
			if len(got) != 0 {
				t.Fatalf("a second init got %v; want it owed once", got)
			}

			// Unsent offline: dave never gets it, legacy or not.
			alice.send(`{"flag":"msg","from":"alice","to":"dave","content":"never seen"}`)
			alice.send(`{"flag":"msg","from":"alice","to":"dave","content":"kept"}`)
			alice.sync()
			var never string
			eventually(t, "dave's messages in history", func() bool {
				page := ts.pageOf("dave", "alice")
				if len(page) == 2 {
					never = page[0]["id"].(string)
				}
				return never != ""
			})
			alice.sendJSON(map[string]any{"flag": "recall", "to": "dave", "id": never})
			if f := alice.next(5 * time.Second); f["ok"] != true {
				t.Fatalf("recall of an unsent message = %v", f)
			}
			if n := ts.unsent("dave", "alice"); n != 1 {
				t.Fatalf("dave's unsent rows = %d; want only the one kept", n)
			}
			_, got = login(t, ts, "dave", "")
			if c := contents(got); joined(c) != "kept" {
				t.Fatalf("dave's legacy init got %v; want only kept", got)
			}
		})
	}
}

// TestEdit: on both backends, an edit reaches a connected recipient as a
// frame, rewrites a copy still unsent offline (a legacy recipient gets the new
// content), shows in history; past the window it is too late.
func TestEdit(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, historyOn)
			alice, _ := login(t, ts, "alice", "")
			bob, _ := loginRecall(t, ts, "bob", nil)
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"teh"}`)
			id := bob.next(5 * time.Second)["id"].(string)
			alice.sendJSON(map[string]any{"flag": "edit", "to": "bob", "id": id, "content": "the 😀"})
			ans := alice.next(5 * time.Second)
			if ans["flag"] != "edit" || ans["ok"] != true || ans["id"] != id || ans["edited"] == nil {
				t.Fatalf("alice's answer = %v", ans)
			}
			f := bob.next(5 * time.Second)
			if f["flag"] != "edit" || f["from"] != "alice" || f["id"] != id || f["content"] != "the 😀" || f["edited"] != ans["edited"] {
				t.Fatalf("bob got %v", f)
			}
			if m := byID(ts.pageOf("bob", "alice"), id); m == nil || m["content"] != "the 😀" || m["edited"] != ans["edited"] {
				t.Fatalf("history = %v", m)
			}

			alice.send(`{"flag":"msg","from":"alice","to":"erin","content":"draft"}`)
			alice.sync()
			var draft string
			eventually(t, "erin's message in history", func() bool {
				if page := ts.pageOf("erin", "alice"); len(page) == 1 {
					draft = page[0]["id"].(string)
				}
				return draft != ""
			})
			alice.sendJSON(map[string]any{"flag": "edit", "to": "erin", "id": draft, "content": "final"})
			if f := alice.next(5 * time.Second); f["ok"] != true {
				t.Fatalf("edit of an unsent message = %v", f)
			}
			_, got := login(t, ts, "erin", "")
			if len(got) != 1 || got[0]["content"] != "final" || got[0]["id"] != draft {
				t.Fatalf("erin's legacy init got %v; want the edited message once", got)
			}
			_, got = loginRecall(t, ts, "erin", nil)
			if len(got) != 0 {
				t.Fatalf("erin owed %v; want nothing (her copy was edited in place)", got)
			}
			alice.sendJSON(map[string]any{"flag": "recall", "to": "bob", "id": id})
			alice.next(5 * time.Second)
			bob.next(5 * time.Second)
			alice.sendJSON(map[string]any{"flag": "edit", "to": "bob", "id": id, "content": "back"})
			if f := alice.next(5 * time.Second); f["code"] != "not_found" {
				t.Fatalf("edit of a recalled message = %v; want not_found", f)
			}
		})
	}
}

// TestRecallTooLate: past history.recall_window the sender is told too_late
// and nothing changes; with the window at 0 recall is off.
func TestRecallTooLate(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "embedded", func(c *config.Config) {
		historyOn(c)
		c.History.RecallWindow = time.Second
	})
	alice, _ := login(t, ts, "alice", "")
	bob, _ := loginRecall(t, ts, "bob", nil)
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"old"}`)
	id := bob.next(5 * time.Second)["id"].(string)
	time.Sleep(2100 * time.Millisecond) // past the window, whole seconds apart
	for _, frame := range []map[string]any{
		{"flag": "recall", "to": "bob", "id": id},
		{"flag": "edit", "to": "bob", "id": id, "content": "new"},
	} {
		alice.sendJSON(frame)
		if f := alice.next(5 * time.Second); f["code"] != "too_late" {
			t.Fatalf("%v -> %v; want too_late", frame, f)
		}
	}
	if m := byID(ts.pageOf("alice", "bob"), id); m == nil || m["content"] != "old" || m["recalled"] != nil || m["edited"] != nil {
		t.Fatalf("history after refusals = %v", m)
	}
	if got := bob.sync(); len(got) != 0 {
		t.Fatalf("bob got %v; want nothing", got)
	}

	off := startServer(t, "embedded", func(c *config.Config) {
		historyOn(c)
		c.History.RecallWindow = 0
	})
	a, _ := login(t, off, "alice", "")
	a.send(`{"flag":"recall","to":"bob","id":"x"}`)
	if f := a.next(5 * time.Second); f["code"] != "unavailable" {
		t.Fatalf("recall with the window at 0 = %v; want unavailable", f)
	}
}

// TestSyncAfterReconnect: on both backends, a client that reconnects with the
// last seq it saw per conversation gets exactly what it missed, in order, a
// page at a time; the backlog pushed at the same init carries the same ids.
func TestSyncAfterReconnect(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, historyOn)
			ts.mustAddMembers("team", []string{"alice", "bob"})
			alice, _ := login(t, ts, "alice", "")
			bob, _ := login(t, ts, "bob", "")
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"before"}`)
			alice.send(`{"flag":"group","from":"alice","to":"team","content":"g-before"}`)
			bob.next(5 * time.Second)
			bob.next(5 * time.Second)
			var pair, group []map[string]any
			eventually(t, "both in history", func() bool {
				pair, group = ts.pageOf("bob", "alice"), ts.pageOf("bob", "g:team")
				return len(pair) == 1 && len(group) == 1
			})
			lastPair, lastGroup := int64(pair[0]["seq"].(float64)), int64(group[0]["seq"].(float64))
			bob.ws.Close()
			eventually(t, "bob offline", func() bool { return !ts.online("bob") })
			var want []string
			for i := range 3 {
				c := fmt.Sprint("missed ", i)
				want = append(want, c)
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": c})
			}
			alice.send(`{"flag":"group","from":"alice","to":"team","content":"g-missed"}`)
			alice.sync()
			eventually(t, "the gap in history", func() bool { return len(ts.pageOf("alice", "bob")) == 4 })
			eventually(t, "the group gap in history", func() bool { return len(ts.pageOf("alice", "g:team")) == 2 })

			c := dial(t, ts.url)
			c.sendJSON(map[string]any{"flag": "init", "from": "bob", "sync": map[string]int64{"alice": lastPair, "g:team": lastGroup}})
			frames := c.sync()
			var ans map[string]any
			var pushedIDs []string
			for _, f := range frames {
				if f["flag"] == "sync" {
					ans = f
				} else if id, ok := f["id"].(string); ok {
					pushedIDs = append(pushedIDs, id)
				}
			}
			if ans == nil {
				t.Fatalf("no sync answer in %v", frames)
			}
			convs := ans["conversations"].([]any)
			if len(convs) != 2 {
				t.Fatalf("sync answer = %v", ans)
			}
			p, g := convs[0].(map[string]any), convs[1].(map[string]any)
			pc, pids := messagesOf(p)
			if p["with"] != "alice" || joined(pc) != joined(want) || p["more"] != false {
				t.Fatalf("pair part = %v; want exactly %v", p, want)
			}
			if gc, _ := messagesOf(g); g["group"] != "team" || joined(gc) != "g-missed" {
				t.Fatalf("group part = %v", g)
			}
			// The offline backlog came too, with the same ids: the client drops repeats.
			synced := map[string]bool{}
			for _, id := range pids {
				synced[id] = true
			}
			_, gids := messagesOf(g)
			synced[gids[0]] = true
			if len(pushedIDs) != 4 {
				t.Fatalf("backlog pushed %v; want the 4 stored", pushedIDs)
			}
			for _, id := range pushedIDs {
				if !synced[id] {
					t.Fatalf("pushed id %s is not in the sync answer %v", id, pids)
				}
			}

			// Paging, and the frame form.
			c.sendJSON(map[string]any{"flag": "sync", "since": map[string]int64{"alice": lastPair}, "limit": 2})
			f := c.next(5 * time.Second)
			p = f["conversations"].([]any)[0].(map[string]any)
			pc, _ = messagesOf(p)
			if joined(pc) != "missed 0,missed 1" || p["more"] != true {
				t.Fatalf("first page = %v", f)
			}
			last := p["messages"].([]any)[1].(map[string]any)["seq"].(float64)
			c.sendJSON(map[string]any{"flag": "sync", "since": map[string]any{"alice": last}, "limit": 2})
			f = c.next(5 * time.Second)
			p = f["conversations"].([]any)[0].(map[string]any)
			if pc, _ = messagesOf(p); joined(pc) != "missed 2" || p["more"] != false {
				t.Fatalf("second page = %v", f)
			}
			for frame, code := range map[string]string{
				`{"flag":"sync"}`:                                 "missing_field",
				`{"flag":"sync","since":{"g:other":0}}`:           "forbidden",
				`{"flag":"sync","since":{"alice":0},"limit":500}`: "bad_field",
				`{"flag":"sync","since":{"alice":-1}}`:            "bad_field",
			} {
				c.send(frame)
				if f := c.next(5 * time.Second); f["code"] != code {
					t.Fatalf("%s -> %v; want %s", frame, f, code)
				}
			}
		})
	}
}

// TestRecallAcrossNodes: the recipient connected on another node gets the
// recall frame there; one connected nowhere gets it at its next init on any node.
func TestRecallAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2, historyOn)
	alice, _ := login(t, nodes[0], "alice", "")
	bob, _ := loginRecall(t, nodes[1], "bob", nil)
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"x"}`)
	id := bob.next(5 * time.Second)["id"].(string)
	alice.sendJSON(map[string]any{"flag": "recall", "to": "bob", "id": id})
	if f := alice.next(5 * time.Second); f["ok"] != true {
		t.Fatalf("answer = %v", f)
	}
	if f := bob.next(5 * time.Second); f["flag"] != "recall" || f["id"] != id {
		t.Fatalf("bob on the other node got %v", f)
	}
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"y"}`)
	id = bob.next(5 * time.Second)["id"].(string)
	bob.ws.Close()
	eventually(t, "bob offline", func() bool { return !nodes[1].online("bob") && !nodes[0].online("bob") })
	alice.sendJSON(map[string]any{"flag": "edit", "to": "bob", "id": id, "content": "z"})
	if f := alice.next(5 * time.Second); f["ok"] != true {
		t.Fatalf("answer = %v", f)
	}
	_, got := loginRecall(t, nodes[0], "bob", nil)
	if len(got) != 1 || got[0]["flag"] != "edit" || got[0]["content"] != "z" {
		t.Fatalf("bob's init on the first node got %v; want the edit", got)
	}
}

// TestRecallOfUnacknowledged: on both backends, a message pushed to a
// connection that acknowledges what it receives ("ack":true), recalled before
// it acknowledged it, does not go back to the pool when that connection
// closes: the account's next init, legacy or not, never gets it. One edited
// meanwhile goes back with its new content.
func TestRecallOfUnacknowledged(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, historyOn)
			alice, _ := login(t, ts, "alice", "")
			bob, _ := loginRecall(t, ts, "bob", map[string]any{"ack": true})
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"take back"}`)
			gone := bob.next(5 * time.Second)["id"].(string)
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"fix me"}`)
			fixed := bob.next(5 * time.Second)["id"].(string)
			alice.sendJSON(map[string]any{"flag": "recall", "to": "bob", "id": gone})
			alice.next(5 * time.Second)
			alice.sendJSON(map[string]any{"flag": "edit", "to": "bob", "id": fixed, "content": "fixed"})
			alice.next(5 * time.Second)
			if f := bob.next(5 * time.Second); f["flag"] != "recall" || f["id"] != gone {
				t.Fatalf("bob got %v; want the recall", f)
			}
			if f := bob.next(5 * time.Second); f["flag"] != "edit" || f["id"] != fixed {
				t.Fatalf("bob got %v; want the edit", f)
			}
			bob.ws.Close() // neither acknowledged: they go back to the pool
			eventually(t, "bob offline", func() bool { return !ts.online("bob") })
			_, got := login(t, ts, "bob", "")
			if len(got) != 1 || got[0]["id"] != fixed || got[0]["content"] != "fixed" {
				t.Fatalf("bob's next init got %v; want only the edited message", got)
			}
		})
	}
}
