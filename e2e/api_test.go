package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"chatserver/config"
)

// call makes a side-API request and decodes the JSON answer.
func (ts *testServer) call(method, path, secret string, body any) (int, map[string]any) {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, ts.apiURL+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			ts.t.Fatalf("%s %s: invalid JSON %q", method, path, raw)
		}
	} else {
		out = map[string]any{"text": string(raw)}
	}
	return res.StatusCode, out
}

func (ts *testServer) api(method, path string, body any) (int, map[string]any) {
	ts.t.Helper()
	return ts.call(method, path, testAPISecret, body)
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestSideAPI drives every endpoint of the side API over HTTP, with the real
// server behind it, on both backends.
func TestSideAPI(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, nil)
			bob, _ := login(t, ts, "bob", "")

			// Auth: no secret, wrong secret; the probes need none.
			for _, secret := range []string{"", "wrong"} {
				if code, body := ts.call("GET", "/api/online?account=bob", secret, nil); code != 401 || errCode(body) != "unauthorized" {
					t.Fatalf("online with secret %q = %d %v; want 401 unauthorized", secret, code, body)
				}
				if code, body := ts.call("GET", "/metrics", secret, nil); code != 401 || errCode(body) != "unauthorized" {
					t.Fatalf("metrics with secret %q = %d %v; want 401 unauthorized", secret, code, body)
				}
				if code, _ := ts.call("GET", "/healthz", secret, nil); code != 200 {
					t.Fatalf("healthz with secret %q = %d; want 200", secret, code)
				}
				if code, body := ts.call("GET", "/readyz", secret, nil); code != 200 || body["ready"] != true {
					t.Fatalf("readyz with secret %q = %d %v; want 200 ready", secret, code, body)
				}
			}

			// Push: online -> pushed, offline -> stored.
			if code, body := ts.api("POST", "/api/push", map[string]string{"from": "system", "to": "bob", "content": "hello bob"}); code != 200 || body["status"] != "pushed" {
				t.Fatalf("push to online bob = %d %v", code, body)
			}
			if f := bob.next(5 * time.Second); f["from"] != "system" || f["content"] != "hello bob" {
				t.Fatalf("bob got %v", f)
			}
			if code, body := ts.api("POST", "/api/push", map[string]string{"from": "system", "to": "dave", "content": "later"}); code != 200 || body["status"] != "stored" {
				t.Fatalf("push to offline dave = %d %v", code, body)
			}
			eventually(t, "dave's row", func() bool { return ts.unsent("dave", "") == 1 })

			// Bad requests: 4xx with a JSON error, nothing done.
			bad := []struct {
				method, path string
				body         any
				code         int
				err          string
			}{
				{"POST", "/api/push", `{"from":"x","to":`, 400, "bad_json"},
				{"POST", "/api/push", `[1]`, 400, "bad_json"},
				{"POST", "/api/push", map[string]any{"from": "x", "to": 5, "content": "c"}, 400, "bad_field"},
				{"POST", "/api/push", map[string]string{"from": "x", "content": "c"}, 400, "missing_field"},
				{"POST", "/api/push", map[string]string{"from": "x", "to": "", "content": "c"}, 400, "bad_field"},
				{"POST", "/api/group/nogroup/push", map[string]string{"from": "x", "content": "c"}, 404, "not_found"},
				{"GET", "/api/online", nil, 400, "missing_field"},
				{"PUT", "/api/group/g1/members", map[string]any{"accounts": []string{}}, 400, "missing_field"},
				{"GET", "/api/nothing", nil, 404, "not_found"},
			}
			for _, b := range bad {
				code, body := ts.api(b.method, b.path, b.body)
				if code != b.code || errCode(body) != b.err {
					t.Errorf("%s %s %v = %d %v; want %d %s", b.method, b.path, b.body, code, body, b.code, b.err)
				}
			}
			if ts.unsent("x", "") != 0 {
				t.Fatal("a bad request stored something")
			}

			// Groups: members, group push (offline member stored with the group).
			if code, body := ts.api("PUT", "/api/group/g1/members", map[string]any{"accounts": []string{"bob", "dave", "erin"}}); code != 200 {
				t.Fatalf("add members = %d %v", code, body)
			}
			code, body := ts.api("GET", "/api/group/g1/members", nil)
			if code != 200 || strings.Join(toStrings(body["members"]), ",") != "bob,dave,erin" {
				t.Fatalf("members = %d %v", code, body)
			}
			code, body = ts.api("POST", "/api/group/g1/push", map[string]string{"from": "system", "content": "to the group"})
			if code != 200 || body["members"] != 3.0 || body["pushed"] != 1.0 || body["stored"] != 2.0 {
				t.Fatalf("group push = %d %v; want 3 members, 1 pushed, 2 stored", code, body)
			}
			if f := bob.next(5 * time.Second); f["group"] != "g1" || f["content"] != "to the group" {
				t.Fatalf("bob got %v", f)
			}
			if code, _ := ts.api("DELETE", "/api/group/g1/members", map[string]any{"accounts": []string{"erin"}}); code != 200 {
				t.Fatalf("remove member = %d", code)
			}
			code, body = ts.api("GET", "/api/group/g1/members", nil)
			if strings.Join(toStrings(body["members"]), ",") != "bob,dave" {
				t.Fatalf("members after removal = %d %v", code, body)
			}

			// Online and unread.
			code, body = ts.api("GET", "/api/online?account=bob,dave&account=zed", nil)
			on, _ := body["online"].(map[string]any)
			if code != 200 || on["bob"] != true || on["dave"] != false || on["zed"] != false {
				t.Fatalf("online = %d %v", code, body)
			}
			eventually(t, "dave's group row", func() bool { return ts.unsent("dave", "") == 2 })
			code, body = ts.api("GET", "/api/unread?account=dave", nil)
			un, _ := body["unread"].(map[string]any)
			dave, _ := un["dave"].(map[string]any)
			if code != 200 || dave["system"] != 2.0 {
				t.Fatalf("unread = %d %v; want dave: {system: 2}", code, body)
			}

			// Broadcast.
			code, body = ts.api("POST", "/api/broadcast", map[string]string{"from": "admin", "content": "maintenance"})
			if code != 200 || body["connections"] != 1.0 {
				t.Fatalf("broadcast = %d %v", code, body)
			}
			if f := bob.next(5 * time.Second); f["flag"] != "all" || f["content"] != "maintenance" {
				t.Fatalf("bob got %v", f)
			}

			// Metrics.
			code, body = ts.api("GET", "/metrics", nil)
			text, _ := body["text"].(string)
			for _, name := range []string{"chat_connections 1", "chat_frames_in_total", "chat_pushes_total", "chat_offline_rows_written_total",
				"chat_errors_total", "chat_broadcast_fanout_seconds", "chat_sql_seconds", "chat_offline_queue_depth", "go_memstats_heap_inuse_bytes"} {
				if !strings.Contains(text, name) {
					t.Errorf("metrics lack %q", name)
				}
			}
			if code != 200 {
				t.Fatalf("metrics = %d", code)
			}

			// dave inits: the group rows come with their group.
			_, got := login(t, ts, "dave", "")
			if len(got) != 2 || got[0]["content"] != "later" || got[0]["group"] != nil || got[1]["group"] != "g1" {
				t.Fatalf("dave drained %v; want the push, then the group message with group g1", got)
			}
		})
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, x := range l {
		out[i], _ = x.(string)
	}
	return out
}

// TestSideAPIOffWithoutSecret: no secret, no API (and the log says so).
func TestSideAPIOffWithoutSecret(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the API
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ts := startServer(t, "embedded", func(c *config.Config) { c.API.Secret = ""; c.API.Addr = addr })
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatalf("something listens on the API address %s although api.secret is empty", addr)
	}
	if ts.app.APIAddr() != "" {
		t.Fatal("the app reports a side API address without a secret")
	}
	c, _ := login(t, ts, "alice", "") // chat is not affected
	c.send(`{"flag":"ping"}`)
	if f := c.next(5 * time.Second); f["flag"] != "pong" {
		t.Fatalf("chat without the side API: ping got %v", f)
	}
}
