// Package e2e runs the real server (internal/app) on loopback ports and drives
// it through its public surface only: WebSocket clients, the side API, its
// /metrics, and the database the test gave it. Each test has its own database,
// Redis key prefix and ports, so they run in parallel.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the test's own connection to MariaDB
	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	_ "modernc.org/sqlite" // the test's own connection to the embedded file

	"chatserver/config"
	"chatserver/internal/app"
	"chatserver/internal/servicetest"
)

// backends are the two ways the server runs: the embedded default, and real
// Redis + MariaDB. End-to-end tests run against both.
var backends = []string{"embedded", "redis+mariadb"}

type testServer struct {
	t      *testing.T
	app    *app.App
	cfg    config.Config
	url    string
	apiURL string

	dbOnce sync.Once
	sqlDB  *sql.DB
}

// assets are the files main embeds, read from the module's tree.
func assets() app.Assets {
	return app.Assets{Migrations: os.DirFS("../sql"), Web: os.DirFS("../web/static")}
}

const testAPISecret = "test-api-secret"

// startServer runs the real server on a loopback port. mutate may change the
// configuration first.
func startServer(t *testing.T, backend string, mutate func(*config.Config)) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Node = "test-" + servicetest.Unique()
	cfg.API.Addr = "127.0.0.1:0"
	cfg.API.Secret = testAPISecret
	// Tests send bursts far above a person's typing; TestLimits turns it on.
	cfg.Limits.FramesPerSecond = 0
	switch backend {
	case "embedded":
		cfg.Embed.Path = filepath.Join(t.TempDir(), "chat.db")
	case "redis+mariadb":
		cfg.MySQL.DSN = servicetest.MySQLDSN(t)
		cfg.Offline.SpoolPath = filepath.Join(t.TempDir(), "spool.db")
		_, prefix := servicetest.Redis(t)
		cfg.Redis.Addr = servicetest.RedisAddr(t)
		cfg.Redis.KeyPrefix = prefix
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return runServer(t, cfg)
}

func runServer(t *testing.T, cfg config.Config) *testServer {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	a, err := app.Start(context.Background(), cfg, log, assets())
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	return serving(t, a, cfg)
}

// serving wraps a started app for the helpers; it is closed at cleanup.
func serving(t *testing.T, a *app.App, cfg config.Config) *testServer {
	ts := &testServer{t: t, app: a, cfg: cfg, url: "ws://" + a.Addr() + "/"}
	if addr := a.APIAddr(); addr != "" {
		ts.apiURL = "http://" + addr
	}
	t.Cleanup(func() { ts.stop() })
	return ts
}

// close shuts the app down as main does at SIGTERM and returns what Close
// said; the harness does not close it again.
func (ts *testServer) close(ctx context.Context) error {
	a := ts.app
	ts.app = nil
	return a.Close(ctx)
}

func (ts *testServer) stop() {
	if ts.app == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := ts.app.Close(ctx); err != nil {
		ts.t.Errorf("shutdown: %v", err)
	}
	ts.app = nil
}

// unsent counts app_offline rows for to (and from, if given) still at status 0.
func (ts *testServer) unsent(to, from string) int {
	ts.t.Helper()
	q := "SELECT COUNT(*) FROM app_offline WHERE `to` = ? AND `status` = 0"
	args := []any{to}
	if from != "" {
		q += " AND `from` = ?"
		args = append(args, from)
	}
	var n int
	if err := ts.db().QueryRow(q, args...).Scan(&n); err != nil {
		ts.t.Fatalf("count unsent: %v", err)
	}
	return n
}

// db is the test's own connection to the database the server uses: the
// MariaDB database of the test, or the embedded SQLite file.
func (ts *testServer) db() *sql.DB {
	ts.t.Helper()
	ts.dbOnce.Do(func() {
		var err error
		if ts.cfg.MySQL.DSN != "" {
			ts.sqlDB, err = sql.Open("mysql", ts.cfg.MySQL.DSN)
		} else {
			ts.sqlDB, err = sql.Open("sqlite", "file:"+ts.cfg.Embed.Path+"?_pragma=busy_timeout(5000)")
		}
		if err != nil {
			ts.t.Fatalf("open the test's database: %v", err)
		}
		db := ts.sqlDB
		ts.t.Cleanup(func() { _ = db.Close() })
	})
	return ts.sqlDB
}

// metric reads one unlabelled sample from the side API's /metrics.
func (ts *testServer) metric(name string) float64 {
	ts.t.Helper()
	code, out := ts.api("GET", "/metrics", nil)
	if code != http.StatusOK {
		ts.t.Fatalf("GET /metrics: %d %v", code, out)
	}
	text, _ := out["text"].(string)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				ts.t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	ts.t.Fatalf("metric %s not in /metrics", name)
	return 0
}

// queued is the offline messages accepted and not yet written.
func (ts *testServer) queued() int { return int(ts.metric("chat_offline_queue_depth")) }

// spooled is the rows waiting in the disk spool for MySQL.
func (ts *testServer) spooled() int { return int(ts.metric("chat_offline_spool_rows")) }

// addMembers adds accounts to group through the side API and returns the
// status and answer.
func (ts *testServer) addMembers(group string, accounts []string) (int, map[string]any) {
	ts.t.Helper()
	return ts.api("PUT", "/api/group/"+group+"/members", map[string]any{"accounts": accounts})
}

// mustAddMembers is addMembers that fails the test unless the call succeeds.
func (ts *testServer) mustAddMembers(group string, accounts []string) {
	ts.t.Helper()
	if code, out := ts.addMembers(group, accounts); code != http.StatusOK {
		ts.t.Fatalf("PUT /api/group/%s/members: %d %v", group, code, out)
	}
}

// members lists group's members through the side API.
func (ts *testServer) members(group string) []string {
	ts.t.Helper()
	code, out := ts.api("GET", "/api/group/"+group+"/members", nil)
	if code != http.StatusOK {
		ts.t.Fatalf("GET /api/group/%s/members: %d %v", group, code, out)
	}
	return toStrings(out["members"])
}

// online asks the side API whether account has a connection on any node.
func (ts *testServer) online(account string) bool {
	ts.t.Helper()
	code, out := ts.api("GET", "/api/online?account="+account, nil)
	if code != http.StatusOK {
		ts.t.Fatalf("GET /api/online: %d %v", code, out)
	}
	m, _ := out["online"].(map[string]any)
	on, _ := m[account].(bool)
	return on
}

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// client is a real WebSocket client over loopback.
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &client{t: t, ws: ws}
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

func (c *client) send(frame string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatalf("send %s: %v", frame, err)
	}
}

// sendJSON marshals v and sends it.
func (c *client) sendJSON(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(string(b))
}

// next reads one frame as a JSON object, failing after timeout.
func (c *client) next(timeout time.Duration) map[string]any {
	c.t.Helper()
	m, err := c.read(timeout)
	if err != nil {
		c.t.Fatalf("waiting for a frame: %v", err)
	}
	return m
}

func (c *client) read(timeout time.Duration) (map[string]any, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
	mt, data, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	if mt != websocket.TextMessage {
		return nil, errors.New("server sent a non-text frame")
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errors.New("server sent invalid JSON: " + string(data))
	}
	return m, nil
}

// none asserts no frame arrives within d.
func (c *client) none(d time.Duration) {
	c.t.Helper()
	m, err := c.read(d)
	if err == nil {
		c.t.Fatalf("unexpected frame %v", m)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("connection failed while expecting silence: %v", err)
	}
	// gorilla cannot read after a timeout: reconnecting is the caller's job, so
	// only use none() as the last read on a connection.
}

// closed reads until the server closes the connection and returns its close
// frame and the frames that came before it; it fails the test if the
// connection ends another way or stays open past timeout.
func (c *client) closed(timeout time.Duration) (*websocket.CloseError, []map[string]any) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var before []map[string]any
	for {
		m, err := c.read(time.Until(deadline))
		if err == nil {
			before = append(before, m)
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("waiting for the server's close frame: %v (after %v)", err, before)
		}
		return ce, before
	}
}

// sync sends a ping and returns every frame that arrived before the pong: since
// a connection's frames are handled in order, the pong means everything sent
// before it (an init and its drain, say) is done.
func (c *client) sync() []map[string]any {
	c.t.Helper()
	c.send(`{"flag":"ping"}`)
	var before []map[string]any
	for {
		m := c.next(10 * time.Second)
		if m["flag"] == "pong" {
			return before
		}
		before = append(before, m)
	}
}

// login dials and inits as account, returning the drained frames.
func login(t *testing.T, ts *testServer, account, peer string) (*client, []map[string]any) {
	t.Helper()
	c := dial(t, ts.url)
	if peer == "" {
		c.sendJSON(map[string]string{"flag": "init", "from": account})
	} else {
		c.sendJSON(map[string]string{"flag": "init", "from": account, "to": peer})
	}
	return c, c.sync()
}

func contents(frames []map[string]any) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i], _ = f["content"].(string)
	}
	return out
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func joined(s []string) string { return strings.Join(s, ",") }
