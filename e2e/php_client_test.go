package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"chatserver/config"
)

// TestPHPClient runs the PHP client's PHPUnit suite (clients/php/tests)
// against the real server on Redis and MariaDB. The suite drives the side API
// through the client; a witness beside it, in this test, holds real WebSocket
// connections for the accounts the suite names and tells it what they
// received, and puts fault endpoints in front of the API (503 busy, 503
// unavailable, an answer that never comes, a refused port) so that the retry
// policy is checked by what reached the server.
func TestPHPClient(t *testing.T) {
	t.Parallel()
	php, phpunit := requirePHP(t)
	hook := newHookCapture(t)
	ts := startServer(t, "redis+mariadb", func(c *config.Config) {
		c.History.Enabled = "true"
		c.Notify.URL, c.Notify.Secret = hook.url, "php-webhook-secret"
		c.Notify.Grace, c.Notify.BatchWindow = 100*time.Millisecond, 50*time.Millisecond
		c.Notify.Presence, c.Notify.PresenceDebounce = true, 100*time.Millisecond
	})
	w := newWitness(t, ts)
	// A real notification event, for the client's webhook check.
	if code, out := ts.api("POST", "/api/push", map[string]string{"from": "alice", "to": "webhookprobe", "content": "hi"}); code != 200 {
		t.Fatalf("push to an offline account: %d %v", code, out)
	}
	event := hook.first(t, "offline_messages", "webhookprobe")
	bodyFile := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(bodyFile, event.body, 0o600); err != nil {
		t.Fatal(err)
	}
	// And a presence event (notify.presence): an account that connected.
	probe, _ := login(t, ts, "presenceprobe", "")
	defer probe.ws.Close()
	presence := hook.first(t, "presence", "presenceprobe")
	presenceFile := filepath.Join(t.TempDir(), "presence.json")
	if err := os.WriteFile(presenceFile, presence.body, 0o600); err != nil {
		t.Fatal(err)
	}

	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + refused.Addr().String()
	_ = refused.Close()

	cmd := exec.Command(php, phpunit, "--configuration", "phpunit.xml.dist", "--fail-on-warning", "--fail-on-risky")
	cmd.Dir = "../clients/php"
	cmd.Env = append(os.Environ(),
		"CHAT_API_URL="+ts.apiURL,
		"CHAT_API_SECRET="+testAPISecret,
		"CHAT_WITNESS_URL="+w.url,
		"CHAT_REFUSED_URL="+refusedURL,
		"CHAT_WEBHOOK_BODY_FILE="+bodyFile,
		"CHAT_WEBHOOK_TIMESTAMP="+event.header.Get("X-Chat-Timestamp"),
		"CHAT_WEBHOOK_SIGNATURE="+event.header.Get("X-Chat-Signature"),
		"CHAT_WEBHOOK_SECRET=php-webhook-secret",
		"CHAT_WEBHOOK_PRESENCE_BODY_FILE="+presenceFile,
		"CHAT_WEBHOOK_PRESENCE_TIMESTAMP="+presence.header.Get("X-Chat-Timestamp"),
		"CHAT_WEBHOOK_PRESENCE_SIGNATURE="+presence.header.Get("X-Chat-Signature"),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("phpunit:\n%s", out)
	if err != nil {
		t.Fatalf("phpunit failed: %v", err)
	}
	if !bytes.Contains(out, []byte("OK (")) {
		t.Fatal("phpunit did not report OK: no tests ran, or some were skipped or incomplete")
	}
}

// requirePHP finds php (with ext-curl) and phpunit; without them the test
// skips, or fails under CHAT_TEST_REQUIRE_SERVICES=1 (scripts/test.sh installs
// them).
func requirePHP(t *testing.T) (php, phpunit string) {
	t.Helper()
	missing := func(what string) {
		msg := what + " (apt-get install php-cli php-curl phpunit)"
		if os.Getenv("CHAT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	php, err := exec.LookPath("php")
	if err != nil {
		missing("php is not installed")
	}
	if phpunit, err = exec.LookPath("phpunit"); err != nil {
		missing("phpunit is not installed")
	}
	if err := exec.Command(php, "-r", `exit(extension_loaded("curl") ? 0 : 1);`).Run(); err != nil {
		missing("php has no curl extension")
	}
	return php, phpunit
}

// witness serves the PHPUnit suite: /login opens WebSocket connections for an
// account, /frames and /closed report what they saw, /fault/{mode}/... stands in
// front of the side API and /seen counts what reached each fault endpoint.
type witness struct {
	ts    *testServer
	url   string
	proxy *httputil.ReverseProxy

	mu    sync.Mutex
	conns map[string][]*websocket.Conn // account -> its connections, in login order
	seen  map[string]int               // mode+" "+path -> requests that reached the fault endpoint
}

func newWitness(t *testing.T, ts *testServer) *witness {
	api, err := url.Parse(ts.apiURL)
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{}
	w := &witness{ts: ts, conns: map[string][]*websocket.Conn{}, seen: map[string]int{}}
	w.proxy = httputil.NewSingleHostReverseProxy(api)
	w.proxy.Transport = transport
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", w.login)
	mux.HandleFunc("GET /frames", w.frames)
	mux.HandleFunc("GET /closed", w.closed)
	mux.HandleFunc("GET /seen", w.countSeen)
	mux.HandleFunc("/fault/{mode}/", w.fault)
	srv := httptest.NewServer(mux)
	w.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		transport.CloseIdleConnections()
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, cs := range w.conns {
			for _, c := range cs {
				_ = c.Close()
			}
		}
	})
	return w
}

func answer(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(v)
}

func refuse(rw http.ResponseWriter, err error) {
	answer(rw, http.StatusInternalServerError, map[string]string{"witness": err.Error()})
}

// POST /login?account=a&n=2: n connections (default 1) init as a; the answer
// comes once each init's drain is done.
func (w *witness) login(rw http.ResponseWriter, r *http.Request) {
	account := r.URL.Query().Get("account")
	n := 1
	if s := r.URL.Query().Get("n"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil {
			refuse(rw, fmt.Errorf("n: %w", err))
			return
		}
	}
	for range n {
		ws, _, err := websocket.DefaultDialer.Dial(w.ts.url, nil)
		if err != nil {
			refuse(rw, fmt.Errorf("dial: %w", err))
			return
		}
		w.mu.Lock()
		w.conns[account] = append(w.conns[account], ws)
		w.mu.Unlock()
		init, _ := json.Marshal(map[string]string{"flag": "init", "from": account})
		if err := ws.WriteMessage(websocket.TextMessage, init); err != nil {
			refuse(rw, fmt.Errorf("init: %w", err))
			return
		}
		if _, err := pingSync(ws); err != nil {
			refuse(rw, fmt.Errorf("init of %s: %w", account, err))
			return
		}
	}
	answer(rw, http.StatusOK, map[string]int{"connections": n})
}

// pingSync sends a ping and returns the frames that came before the pong.
func pingSync(ws *websocket.Conn) ([]map[string]any, error) {
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"flag":"ping"}`)); err != nil {
		return nil, err
	}
	c := &client{ws: ws}
	var before []map[string]any
	for {
		m, err := c.read(10 * time.Second)
		if err != nil {
			return before, err
		}
		if m["flag"] == "pong" {
			return before, nil
		}
		before = append(before, m)
	}
}

func (w *witness) connsOf(account string) []*websocket.Conn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*websocket.Conn(nil), w.conns[account]...)
}

// GET /frames?account=a -> {"connections":[[frame,...],...]}: what each of a's
// connections received since the last look.
func (w *witness) frames(rw http.ResponseWriter, r *http.Request) {
	account := r.URL.Query().Get("account")
	out := [][]map[string]any{}
	for i, ws := range w.connsOf(account) {
		got, err := pingSync(ws)
		if err != nil {
			refuse(rw, fmt.Errorf("connection %d of %s: %w", i, account, err))
			return
		}
		if got == nil {
			got = []map[string]any{}
		}
		out = append(out, got)
	}
	answer(rw, http.StatusOK, map[string]any{"connections": out})
}

// GET /closed?account=a -> {"connections":[{"code":4004,"text":"..."},...]}:
// waits for the server to close each of a's connections.
func (w *witness) closed(rw http.ResponseWriter, r *http.Request) {
	account := r.URL.Query().Get("account")
	out := []map[string]any{}
	for i, ws := range w.connsOf(account) {
		c := &client{ws: ws}
		for {
			_, err := c.read(5 * time.Second)
			if err == nil {
				continue
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				refuse(rw, fmt.Errorf("connection %d of %s did not get a close frame: %w", i, account, err))
				return
			}
			out = append(out, map[string]any{"code": ce.Code, "text": ce.Text})
			break
		}
	}
	answer(rw, http.StatusOK, map[string]any{"connections": out})
}

// GET /seen?mode=busy&path=/api/push -> {"n":3}
func (w *witness) countSeen(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	n := w.seen[r.URL.Query().Get("mode")+" "+r.URL.Query().Get("path")]
	w.mu.Unlock()
	answer(rw, http.StatusOK, map[string]int{"n": n})
}

// /fault/{mode}/api/...: busy answers 503 busy to the first two requests of a
// path and passes the others to the API; unavailable always answers 503
// unavailable; hang never answers (until the caller gives up).
func (w *witness) fault(rw http.ResponseWriter, r *http.Request) {
	mode := r.PathValue("mode")
	path := strings.TrimPrefix(r.URL.Path, "/fault/"+mode)
	w.mu.Lock()
	w.seen[mode+" "+path]++
	n := w.seen[mode+" "+path]
	w.mu.Unlock()
	switch {
	case mode == "busy" && n <= 2:
		answer(rw, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "busy", "message": "not keeping up; try again"}})
	case mode == "busy":
		r.URL.Path = path
		r.URL.RawPath = ""
		w.proxy.ServeHTTP(rw, r)
	case mode == "unavailable":
		answer(rw, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "unavailable", "message": "queued, not yet stored"}})
	case mode == "hang":
		// The body read, the server watches the connection: the context ends
		// when the caller gives up. The timer bounds a caller that never does.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	default:
		http.NotFound(rw, r)
	}
}

// hookCapture is the site's notify.url: it keeps the first event of each type
// and account posted, as it came (body and headers), and takes every event.
type hookCapture struct {
	url string
	mu  sync.Mutex
	got map[string]capturedEvent // guarded by mu: by the body's "type" and "account"
}

type capturedEvent struct {
	body   []byte
	header http.Header
}

func newHookCapture(t *testing.T) *hookCapture {
	h := &hookCapture{got: make(map[string]capturedEvent)}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			Type    string `json:"type"`
			Account string `json:"account"`
		}
		_ = json.Unmarshal(body, &ev)
		h.mu.Lock()
		if _, ok := h.got[ev.Type+"/"+ev.Account]; !ok {
			h.got[ev.Type+"/"+ev.Account] = capturedEvent{body: body, header: r.Header.Clone()}
		}
		h.mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// first returns the first event of type typ for account, waiting up to 15 s
// for one.
func (h *hookCapture) first(t *testing.T, typ, account string) capturedEvent {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		e, ok := h.got[typ+"/"+account]
		h.mu.Unlock()
		if ok {
			return e
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s event for %s within 15 s", typ, account)
	return capturedEvent{}
}
