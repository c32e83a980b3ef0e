package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/groups"
	"chatserver/handlers"
	"chatserver/health"
)

// fakeLogic stands in for the handler, the offline pool and the group store:
// it records every call and answers from its fields. The real ones are tested
// end to end; here the API's own logic is under test.
type fakeLogic struct {
	mu       sync.Mutex
	calls    []string
	err      error // returned by every call when set
	notReady error // what the readiness check answers
	stored   bool
	online   map[string]bool
	unread   map[string]map[string]int
	members  map[string][]string
}

func (f *fakeLogic) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeLogic) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeLogic) Push(from, to, content string) (bool, error) {
	err := f.record("push " + from + " " + to + " " + content)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stored, err
}

// set changes the fake's answers while the server runs.
func (f *fakeLogic) set(fn func(f *fakeLogic)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeLogic) ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notReady
}

func (f *fakeLogic) PushGroup(_ context.Context, from, group, content string, memberOnly bool) (handlers.GroupResult, error) {
	if memberOnly {
		return handlers.GroupResult{}, errors.New("the side API must not require membership")
	}
	return handlers.GroupResult{Members: 3, Pushed: 2, Stored: 1}, f.record("group " + from + " " + group + " " + content)
}

func (f *fakeLogic) Announce(from, content string) (int, error) {
	return 7, f.record("all " + from + " " + content)
}

func (f *fakeLogic) Online(_ context.Context, account string) (bool, error) {
	return f.online[account], f.record("online " + account)
}

func (f *fakeLogic) Disconnect(account, reason string) (handlers.Disconnected, error) {
	return handlers.Disconnected{Closed: 2, Announced: true}, f.record("disconnect " + account + " " + reason)
}

func (f *fakeLogic) History(_ context.Context, r handlers.HistoryRequest) (handlers.HistoryPage, error) {
	return handlers.HistoryPage{With: r.With, Messages: []handlers.HistoryMessage{}}, f.record("history " + r.Reader + " " + r.With)
}

func (f *fakeLogic) Unread(_ context.Context, account string) (map[string]int, error) {
	return f.unread[account], f.record("unread " + account)
}

func (f *fakeLogic) Get(_ context.Context, group string) (*groups.Set, error) {
	if err := f.record("members " + group); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return groups.NewSet(f.members[group]), nil
}

func (f *fakeLogic) Add(_ context.Context, group string, accounts []string) error {
	if err := f.record("add " + group + " " + strings.Join(accounts, ",")); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[group] = append(f.members[group], accounts...)
	return nil
}

func (f *fakeLogic) Remove(_ context.Context, group string, accounts []string) error {
	if err := f.record("remove " + group + " " + strings.Join(accounts, ",")); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var kept []string
	for _, m := range f.members[group] {
		if !strings.Contains(","+strings.Join(accounts, ",")+",", ","+m+",") {
			kept = append(kept, m)
		}
	}
	f.members[group] = kept
	return nil
}

// countedErrors records the error codes the API counts.
type countedErrors struct {
	mu    sync.Mutex
	codes []string
}

func (c *countedErrors) Error(code string) {
	c.mu.Lock()
	c.codes = append(c.codes, code)
	c.mu.Unlock()
}

type apiFixture struct {
	url   string
	raw   []byte // the last answer's body, as sent
	logic *fakeLogic
	errs  *countedErrors
}

// startWithLogic runs the API on a loopback port with the fake behind it;
// change adjusts its configuration.
func startWithLogic(t *testing.T, change ...func(*Config)) *apiFixture {
	t.Helper()
	fx := &apiFixture{
		logic: &fakeLogic{
			online:  map[string]bool{"alice": true},
			unread:  map[string]map[string]int{"bob": {"alice": 3}},
			members: map[string][]string{"g1": {"alice", "bob"}},
		},
		errs: &countedErrors{},
	}
	cfg := Config{Addr: "127.0.0.1:0", Secret: "s3cret"}
	for _, c := range change {
		c(&cfg)
	}
	s := New(cfg, Deps{
		Chat: fx.logic, Unread: fx.logic, Members: fx.logic,
		Probes: health.New(health.Config{Checks: []health.Check{{Name: "sql", Ping: fx.logic.ping}}, Reuse: time.Nanosecond},
			zerolog.New(zerolog.NewTestWriter(t))),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "chat_connections 0\n")
		}),
		Errors: fx.errs,
		Log:    zerolog.New(zerolog.NewTestWriter(t)),
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	fx.url = "http://" + s.Addr()
	return fx
}

// call makes one request and decodes the JSON answer (nil for another body).
func (fx *apiFixture) call(t *testing.T, auth, method, path, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, fx.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	fx.raw = raw
	var v map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
		}
	}
	return resp.StatusCode, v, resp.Header
}

const goodAuth = "Bearer s3cret"

// errorCode returns the code of an {"error":{"code","message"}} answer, and
// fails the test for any other shape.
func errorCode(t *testing.T, v map[string]any) string {
	t.Helper()
	e, ok := v["error"].(map[string]any)
	if !ok || len(v) != 1 {
		t.Fatalf("answer %v; want {\"error\":{...}} alone", v)
	}
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if code == "" || msg == "" || len(e) != 2 {
		t.Fatalf("error %v; want a code and a message", e)
	}
	return code
}

// TestEveryRouteNeedsTheSecret: without the bearer secret, or with a wrong
// one, every route but the probes (and an unknown one too) answers 401 and
// reaches nothing.
func TestEveryRouteNeedsTheSecret(t *testing.T) {
	fx := startWithLogic(t)
	routes := [][2]string{
		{"POST", "/api/push"}, {"POST", "/api/group/g1/push"}, {"POST", "/api/broadcast"}, {"POST", "/api/disconnect"},
		{"GET", "/api/online?account=alice"}, {"GET", "/api/unread?account=bob"},
		{"GET", "/api/group/g1/members"}, {"PUT", "/api/group/g1/members"}, {"DELETE", "/api/group/g1/members"},
		{"GET", "/metrics"}, {"GET", "/nothing/here"}, {"POST", "/healthz"}, {"DELETE", "/readyz"},
	}
	body := `{"from":"admin","to":"alice","content":"hi","accounts":["carol"]}`
	for _, auth := range []string{"", "Bearer wrong", "s3cret", "Bearer s3cret2", "bearer s3cret"} {
		for _, r := range routes {
			status, v, h := fx.call(t, auth, r[0], r[1], body)
			if status != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
				t.Fatalf("%s %s with Authorization %q: %d %v; want 401 with WWW-Authenticate", r[0], r[1], auth, status, v)
			}
			if code := errorCode(t, v); code != "unauthorized" {
				t.Fatalf("%s %s: code %q; want unauthorized", r[0], r[1], code)
			}
		}
	}
	if calls := fx.logic.called(); len(calls) != 0 {
		t.Fatalf("unauthorized calls reached the logic: %v", calls)
	}
}

// TestRoutesAnswer: each route, authorized, calls the logic with the request's
// values and answers its documented JSON.
func TestRoutesAnswer(t *testing.T) {
	fx := startWithLogic(t)
	cases := []struct {
		method, path, body string
		want               string // the answer, as JSON
		call               string // what reached the logic last
	}{
		{"POST", "/api/push", `{"from":"admin","to":"alice","content":"hi"}`, `{"status":"pushed"}`, "push admin alice hi"},
		{"POST", "/api/group/g1/push", `{"from":"admin","content":"hey"}`, `{"members":3,"pushed":2,"stored":1}`, "group admin g1 hey"},
		{"POST", "/api/broadcast", `{"from":"admin","content":"news"}`, `{"connections":7}`, "all admin news"},
		{"POST", "/api/disconnect", `{"account":"mallory","reason":"banned"}`, `{"closed":2,"announced":true}`, "disconnect mallory banned"},
		{"POST", "/api/disconnect", `{"account":"mallory"}`, `{"closed":2,"announced":true}`, "disconnect mallory "},
		{"GET", "/api/online?account=alice,bob", ``, `{"online":{"alice":true,"bob":false}}`, "online bob"},
		{"GET", "/api/online?account=alice&account=+bob+", ``, `{"online":{"alice":true,"bob":false}}`, "online bob"},
		{"GET", "/api/unread?account=bob", ``, `{"unread":{"bob":{"alice":3}}}`, "unread bob"},
		{"GET", "/api/group/g1/members", ``, `{"group":"g1","members":["alice","bob"]}`, "members g1"},
		{"GET", "/api/group/empty/members", ``, `{"group":"empty","members":[]}`, "members empty"},
		{"PUT", "/api/group/g1/members", `{"accounts":["carol"]}`, `{"group":"g1","members":["alice","bob","carol"]}`, "members g1"},
		{"DELETE", "/api/group/g1/members", `{"accounts":["alice"]}`, `{"group":"g1","members":["bob","carol"]}`, "members g1"},
		{"GET", "/healthz", ``, `{"status":"ok"}`, ""},
		{"GET", "/readyz", ``, `{"ready":true,"draining":false,"checks":{"sql":"ok"}}`, ""},
	}
	for _, tc := range cases {
		before := len(fx.logic.called())
		status, v, _ := fx.call(t, goodAuth, tc.method, tc.path, tc.body)
		var want map[string]any
		if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
			t.Fatal(err)
		}
		gotJSON, _ := json.Marshal(v)
		wantJSON, _ := json.Marshal(want)
		if status != http.StatusOK || string(gotJSON) != string(wantJSON) {
			t.Fatalf("%s %s: %d %s; want 200 %s", tc.method, tc.path, status, gotJSON, wantJSON)
		}
		calls := fx.logic.called()[before:]
		switch {
		case tc.call == "" && len(calls) != 0:
			t.Fatalf("%s %s reached the logic: %v", tc.method, tc.path, calls)
		case tc.call != "" && (len(calls) == 0 || calls[len(calls)-1] != tc.call):
			t.Fatalf("%s %s: logic saw %v; want it to end with %q", tc.method, tc.path, calls, tc.call)
		}
	}
	if calls := strings.Join(fx.logic.called(), ";"); !strings.Contains(calls, "add g1 carol") || !strings.Contains(calls, "remove g1 alice") {
		t.Fatalf("membership changes did not reach the store: %s", calls)
	}

	fx.logic.set(func(f *fakeLogic) { f.stored = true })
	if _, v, _ := fx.call(t, goodAuth, "POST", "/api/push", `{"from":"admin","to":"zed","content":"hi"}`); v["status"] != "stored" {
		t.Fatalf("push to an offline account: %v; want status stored", v)
	}
	fx.logic.set(func(f *fakeLogic) { f.notReady = errors.New("database down") })
	if status, v, _ := fx.call(t, goodAuth, "GET", "/readyz", ``); status != http.StatusServiceUnavailable ||
		v["ready"] != false || v["checks"].(map[string]any)["sql"] != "fail" {
		t.Fatalf("readyz with a failing check: %d %v; want 503, ready false and the check named as failing", status, v)
	}
	status, _, h := fx.call(t, goodAuth, "GET", "/metrics", ``)
	if status != http.StatusOK || h.Get("Content-Type") == "" {
		t.Fatalf("metrics: %d; want 200 from the metrics handler", status)
	}
}

// TestRouteErrors: bad requests and failing logic answer a 4xx or 5xx with
// the {"error":{"code","message"}} shape, count the code, and change nothing.
func TestRouteErrors(t *testing.T) {
	fx := startWithLogic(t)
	cases := []struct {
		name, method, path, body string
		logicErr                 error
		status                   int
		code                     string
	}{
		{"unknown route", "GET", "/api/nothing", ``, nil, 404, "not_found"},
		{"wrong method", "GET", "/api/push", ``, nil, 404, "not_found"},
		{"not json", "POST", "/api/push", `{"from":`, nil, 400, "bad_json"},
		{"not an object", "POST", "/api/push", `["a"]`, nil, 400, "bad_json"},
		{"field of the wrong type", "POST", "/api/push", `{"from":"a","to":5,"content":"c"}`, nil, 400, "bad_field"},
		{"push without to", "POST", "/api/push", `{"from":"a","content":"c"}`, nil, 400, "missing_field"},
		{"push without from", "POST", "/api/push", `{"to":"a","content":"c"}`, nil, 400, "missing_field"},
		{"group push without content", "POST", "/api/group/g1/push", `{"from":"a"}`, nil, 400, "missing_field"},
		{"broadcast without from", "POST", "/api/broadcast", `{"content":"c"}`, nil, 400, "missing_field"},
		{"online without account", "GET", "/api/online", ``, nil, 400, "missing_field"},
		{"disconnect without account", "POST", "/api/disconnect", `{"reason":"r"}`, nil, 400, "missing_field"},
		{"disconnect with a reason not text", "POST", "/api/disconnect", `{"account":"a","reason":5}`, nil, 400, "bad_field"},
		{"logic: disconnect told no other node", "POST", "/api/disconnect", `{"account":"a"}`, &handlers.Error{Code: handlers.CodeUnavailable, Message: "call again"}, 503, "unavailable"},
		{"unread with blank accounts", "GET", "/api/unread?account=,+,", ``, nil, 400, "missing_field"},
		{"online for too many", "GET", "/api/online?account=" + strings.Repeat("a,", 1001), ``, nil, 400, "too_many"},
		{"members without accounts", "PUT", "/api/group/g1/members", `{"accounts":[]}`, nil, 400, "missing_field"},
		{"member name too long", "PUT", "/api/group/g1/members", `{"accounts":["` + strings.Repeat("x", 65) + `"]}`, nil, 400, "bad_field"},
		{"member with a control character", "DELETE", "/api/group/g1/members", `{"accounts":["a\u0001"]}`, nil, 400, "bad_field"},
		{"group id too long", "PUT", "/api/group/" + strings.Repeat("g", 65) + "/members", `{"accounts":["a"]}`, nil, 400, "bad_field"},
		{"logic: not found", "POST", "/api/group/g9/push", `{"from":"a","content":"c"}`, &handlers.Error{Code: handlers.CodeNotFound, Message: "no group g9"}, 404, "not_found"},
		{"logic: forbidden", "POST", "/api/broadcast", `{"from":"a","content":"c"}`, &handlers.Error{Code: handlers.CodeForbidden, Message: "no"}, 403, "forbidden"},
		{"logic: busy", "POST", "/api/push", `{"from":"a","to":"b","content":"c"}`, &handlers.Error{Code: handlers.CodeBusy, Message: "slow down"}, 503, "busy"},
		{"logic: unavailable", "GET", "/api/online?account=a", ``, &handlers.Error{Code: handlers.CodeUnavailable, Message: "later"}, 503, "unavailable"},
		{"logic: bad field", "POST", "/api/push", `{"from":"a","to":"b","content":"c"}`, &handlers.Error{Code: handlers.CodeTooLong, Message: "too long"}, 400, handlers.CodeTooLong},
		{"logic: group too large", "PUT", "/api/group/g1/members", `{"accounts":["z"]}`, &groups.TooLargeError{Group: "g1", Size: 11, Max: 10}, 422, "too_large"},
		{"logic: anything else", "GET", "/api/unread?account=bob", ``, errors.New("disk on fire"), 500, "internal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx.logic.set(func(f *fakeLogic) { f.err = tc.logicErr })
			before := len(fx.logic.called())
			fx.errs.mu.Lock()
			counted := len(fx.errs.codes)
			fx.errs.mu.Unlock()

			status, v, _ := fx.call(t, goodAuth, tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("status %d %v; want %d", status, v, tc.status)
			}
			if code := errorCode(t, v); code != tc.code {
				t.Fatalf("code %q; want %q", code, tc.code)
			}
			fx.errs.mu.Lock()
			codes := fx.errs.codes[counted:]
			fx.errs.mu.Unlock()
			if len(codes) != 1 || codes[0] != "api_"+tc.code {
				t.Fatalf("errors counted %v; want [api_%s]", codes, tc.code)
			}
			if calls := fx.logic.called()[before:]; tc.logicErr == nil && len(calls) != 0 {
				t.Fatalf("a refused request reached the logic: %v", calls)
			}
		})
	}
	fx.logic.set(func(f *fakeLogic) { f.err = nil })
	if _, v, _ := fx.call(t, goodAuth, "GET", "/api/group/g1/members", ``); len(v["members"].([]any)) != 2 {
		t.Fatalf("refused membership changes changed the group: %v", v)
	}
}
