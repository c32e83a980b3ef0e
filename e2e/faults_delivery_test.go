package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"chatserver/config"
	"chatserver/internal/app"
	"chatserver/internal/faultproxy"
	"chatserver/internal/servicetest"
)

// TestBacklogInAckWindows: a client that inits with "ack":true while more
// messages wait for it than limits.max_unacked gets its whole backlog, in
// windows it can acknowledge, and then chats live (its sender gets pushed).
func TestBacklogInAckWindows(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, func(c *config.Config) { c.Limits.MaxUnacked = 3 })
			alice, _ := login(t, ts, "alice", "")
			for i := 1; i <= 5; i++ {
				alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": fmt.Sprint("m", i)})
			}
			alice.sync()
			eventually(t, "5 rows stored", func() bool { return ts.unsent("bob", "") == 5 })

			for round := 0; round < 2; round++ { // and again after a reconnect without acks
				bob := dial(t, ts.url)
				bob.send(`{"flag":"init","from":"bob","ack":true}`)
				var got []string
				for len(got) < 5 {
					f := bob.next(5 * time.Second)
					got = append(got, f["content"].(string))
					if round == 1 {
						bob.sendJSON(map[string]string{"flag": "ack", "id": f["id"].(string)})
					}
					if round == 0 {
						break // the first time, bob leaves before acknowledging
					}
				}
				if round == 0 {
					if joined(got) != "m1" {
						t.Fatalf("first frame = %v; want m1", got)
					}
					bob.drop()
					time.Sleep(200 * time.Millisecond)
					continue
				}
				if joined(got) != "m1,m2,m3,m4,m5" {
					t.Fatalf("backlog = %v; want m1..m5 in order", got)
				}
				bob.sync()
				alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"live","cid":"c-live"}`)
				if ack := alice.next(5 * time.Second); ack["status"] != "pushed" {
					t.Fatalf("live message after the backlog: sender got %v; want pushed", ack)
				}
				if f := bob.next(5 * time.Second); f["content"] != "live" {
					t.Fatalf("bob got %v; want the live message", f)
				}
				eventually(t, "acknowledged rows marked sent", func() bool { return ts.unsent("bob", "") == 0 })
			}
		})
	}
}

// TestBlackholedMySQLNeverStallsChat: with MySQL accepting connections and
// answering nothing, inits answer unavailable within a bounded time and chat
// live, while pings and live messages on other connections are answered at
// once, even with a handler pool smaller than the inits waiting.
func TestBlackholedMySQLNeverStallsChat(t *testing.T) {
	t.Parallel()
	proxy, err := faultproxy.Start("127.0.0.1:3306")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	ts := startServer(t, "redis+mariadb", func(c *config.Config) {
		m, err := mysql.ParseDSN(c.MySQL.DSN)
		if err != nil {
			t.Fatal(err)
		}
		m.Addr = proxy.Addr()
		c.MySQL.DSN = m.FormatDSN()
		c.Server.HandlerPoolSize = 8
		c.Offline.QueryTimeout = 2 * time.Second
	})
	alice, _ := login(t, ts, "alice", "")
	bob, _ := login(t, ts, "bob", "")
	// dave acknowledges; his backlog is read before the fault, acked during it.
	for i := 1; i <= 3; i++ {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "dave", "content": fmt.Sprint("d", i)})
	}
	alice.sync()
	eventually(t, "dave's rows stored", func() bool { return ts.unsent("dave", "") == 3 })
	dave := dial(t, ts.url)
	dave.send(`{"flag":"init","from":"dave","ack":true}`)
	var last map[string]any
	for i := 0; i < 3; i++ {
		last = dave.next(5 * time.Second)
	}
	proxy.Set(faultproxy.Blackhole, 0)
	t.Cleanup(func() { proxy.Set(faultproxy.Pass, 0) })

	// Marking acknowledged rows waits on MySQL, dave does not.
	dave.sendJSON(map[string]string{"flag": "ack", "id": last["id"].(string)})
	t0 := time.Now()
	dave.send(`{"flag":"ping"}`)
	if f := dave.next(2 * time.Second); f["flag"] != "pong" || time.Since(t0) > time.Second {
		t.Fatalf("after an ack with MySQL black-holed, ping got %v after %v", f, time.Since(t0))
	}

	const inits = 12
	users := make([]*client, inits)
	start := time.Now()
	for i := range users {
		users[i] = dial(t, ts.url)
		users[i].sendJSON(map[string]string{"flag": "init", "from": fmt.Sprint("u", i)})
	}
	for round := 0; round < 5; round++ {
		t0 := time.Now()
		alice.send(`{"flag":"ping"}`)
		if f := alice.next(2 * time.Second); f["flag"] != "pong" {
			t.Fatalf("ping answered with %v", f)
		}
		bob.sendJSON(map[string]string{"flag": "msg", "from": "bob", "to": "alice", "content": fmt.Sprint("hi ", round)})
		if f := alice.next(2 * time.Second); f["content"] != fmt.Sprint("hi ", round) {
			t.Fatalf("live message: got %v", f)
		}
		if d := time.Since(t0); d > time.Second {
			t.Fatalf("a ping and a live message took %v with MySQL black-holed", d)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for i, u := range users {
		f := u.next(15 * time.Second)
		if f["code"] != "unavailable" {
			t.Fatalf("init %d: got %v; want unavailable", i, f)
		}
	}
	if d := time.Since(start); d > 12*time.Second {
		t.Fatalf("inits answered unavailable only after %v", d)
	}
	// The refused backlog does not stop live chat for those who just came.
	alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "u3", "content": "welcome"})
	if f := users[3].next(2 * time.Second); f["content"] != "welcome" {
		t.Fatalf("u3 after its unavailable init got %v; want a live message", f)
	}
}

// TestStartWaitsForMySQL: a node restarted while MySQL is down waits for it,
// saying so, instead of exiting; it serves once MySQL answers.
func TestStartWaitsForMySQL(t *testing.T) {
	t.Parallel()
	proxy, err := faultproxy.Start("127.0.0.1:3306")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.API.Addr = "127.0.0.1:0"
	cfg.Node = "test-" + servicetest.Unique()
	cfg.Offline.SpoolPath = filepath.Join(t.TempDir(), "spool.db")
	m, err := mysql.ParseDSN(servicetest.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Addr = proxy.Addr()
	cfg.MySQL.DSN = m.FormatDSN()
	proxy.Set(faultproxy.Cut, 0)

	var logs syncBuffer
	type started struct {
		a   *app.App
		err error
	}
	done := make(chan started, 1)
	go func() {
		a, err := app.Start(context.Background(), cfg, zerolog.New(&logs), assets())
		done <- started{a, err}
	}()
	select {
	case s := <-done:
		t.Fatalf("start returned while MySQL was down: %v", s.err)
	case <-time.After(2 * time.Second):
	}
	if !strings.Contains(logs.String(), "MySQL unreachable at start") {
		t.Fatalf("the log does not say what the node waits for:\n%s", logs.String())
	}
	proxy.Set(faultproxy.Pass, 0)
	var s started
	select {
	case s = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("start did not finish after MySQL came back")
	}
	if s.err != nil {
		t.Fatalf("start after MySQL came back: %v", s.err)
	}
	ts := serving(t, s.a, cfg)
	alice, _ := login(t, ts, "alice", "")
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"hi","cid":"1"}`)
	if f := alice.next(5 * time.Second); f["status"] != "stored" {
		t.Fatalf("after the wait: %v; want a stored ack", f)
	}
}

// mysqlThroughProxy points the configuration's MySQL DSN at a fault proxy in
// front of the test's MariaDB.
func mysqlThroughProxy(t *testing.T, c *config.Config, proxy *faultproxy.Proxy) {
	t.Helper()
	m, err := mysql.ParseDSN(c.MySQL.DSN)
	if err != nil {
		t.Fatal(err)
	}
	m.Addr = proxy.Addr()
	c.MySQL.DSN = m.FormatDSN()
}

// TestAPIStoredMeansCommitted: the side API answers "stored" only once the row
// is committed; with MySQL hanging (and no spool) it answers 503 unavailable
// after offline.drain_timeout, and the message is still written once MySQL
// answers.
func TestAPIStoredMeansCommitted(t *testing.T) {
	proxy, err := faultproxy.Start("127.0.0.1:3306")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	ts := startServer(t, "redis+mariadb", func(c *config.Config) {
		mysqlThroughProxy(t, c, proxy)
		c.Offline.SpoolPath = ""
		c.Offline.DrainTimeout = 2 * time.Second
	})
	if code, body := ts.api("POST", "/api/push", map[string]string{"from": "system", "to": "zed", "content": "before"}); code != 200 || body["status"] != "stored" {
		t.Fatalf("push with MySQL up: %d %v; want 200 stored", code, body)
	}
	proxy.Set(faultproxy.Blackhole, 0)
	start := time.Now()
	code, body := ts.api("POST", "/api/push", map[string]string{"from": "system", "to": "zed", "content": "during"})
	if code != 503 || !strings.Contains(fmt.Sprint(body), "unavailable") {
		t.Fatalf("push with MySQL hanging: %d %v; want 503 unavailable, not stored", code, body)
	}
	if d := time.Since(start); d < time.Second || d > 15*time.Second {
		t.Fatalf("the answer came after %v; want it after drain_timeout (2 s)", d)
	}
	proxy.Set(faultproxy.Pass, 0)
	eventually(t, "the queued message written once MySQL answers", func() bool { return ts.unsent("zed", "") == 2 })
}

// TestInitWithRowsInTheSpool: while some of an account's messages wait in the
// spool for MySQL (MySQL can be read but not written: a READ lock held by
// another session), its init answers unavailable instead of going live past
// them, and a later init gets them in order.
func TestInitWithRowsInTheSpool(t *testing.T) {
	proxy, err := faultproxy.Start("127.0.0.1:3306")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	ts := startServer(t, "redis+mariadb", func(c *config.Config) { mysqlThroughProxy(t, c, proxy) })
	alice, _ := login(t, ts, "alice", "")
	proxy.Set(faultproxy.Cut, 0)
	for i := 1; i <= 3; i++ {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": fmt.Sprint("m", i), "cid": fmt.Sprint("c", i)})
		if ack := alice.next(10 * time.Second); ack["status"] != "stored" {
			t.Fatalf("m%d: %v; want stored (in the spool)", i, ack)
		}
	}
	ctx := context.Background()
	m, err := mysql.ParseDSN(ts.cfg.MySQL.DSN)
	if err != nil {
		t.Fatal(err)
	}
	m.Addr = "127.0.0.1:3306" // straight to MariaDB, not through the proxy
	db, err := sql.Open("mysql", m.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lock, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "LOCK TABLES app_offline READ"); err != nil {
		t.Fatal(err)
	}
	proxy.Set(faultproxy.Pass, 0)
	bob := dial(t, ts.url)
	bob.send(`{"flag":"init","from":"bob"}`)
	got := bob.sync()
	if len(got) != 1 || got[0]["code"] != "unavailable" {
		t.Fatalf("init with bob's rows in the spool: %v; want unavailable", got)
	}
	if _, err := lock.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the spool moved to MySQL", func() bool { return ts.unsent("bob", "") == 3 })
	_, got = login(t, ts, "bob", "")
	if joined(contents(got)) != "m1,m2,m3" {
		t.Fatalf("bob's next init got %v; want m1,m2,m3", contents(got))
	}
}
