package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"chatserver/config"
	"chatserver/internal/servicetest"
)

// TestShutdownWriterKeepsItsShare: a handler that will not finish (a group
// lookup stuck on a locked members table) holds the connections stage to its
// half of server.shutdown_timeout; messages waiting for a locked app_offline
// when the shutdown starts are written once it unlocks, after that half, and
// the shutdown reports only the connections stage as unfinished.
func TestShutdownWriterKeepsItsShare(t *testing.T) {
	t.Parallel()
	const budget = 4 * time.Second
	// The server runs as its own process, stopped with SIGTERM as in
	// production: a connections stage cut short leaves nbio's engine running,
	// which only the end of the process stops.
	bin := buildServer(t)
	addrs := make([]string, 2)
	for i := range addrs {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addrs[i] = ln.Addr().String()
		_ = ln.Close()
	}
	cfg := config.Default()
	cfg.MySQL.DSN = servicetest.MySQLDSN(t)
	_, prefix := servicetest.Redis(t)
	srv := startProc(t, bin, []string{
		"CHAT_SERVER_ADDR=" + addrs[0],
		"CHAT_API_ADDR=" + addrs[1],
		"CHAT_API_SECRET=" + testAPISecret,
		"CHAT_MYSQL_DSN=" + cfg.MySQL.DSN,
		"CHAT_REDIS_ADDR=" + servicetest.RedisAddr(t),
		"CHAT_REDIS_KEY_PREFIX=" + prefix,
		"CHAT_LIMITS_FRAMES_PER_SECOND=0",
		"CHAT_SERVER_SHUTDOWN_TIMEOUT=" + budget.String(),
		"CHAT_OFFLINE_DRAIN_TIMEOUT=1m", // the senders wait for their rows as long as it takes
		"CHAT_OFFLINE_SPOOL_PATH=" + filepath.Join(t.TempDir(), "spool.db"),
	}, addrs[0])
	ts := &testServer{t: t, cfg: cfg, url: "ws://" + addrs[0] + "/", apiURL: "http://" + addrs[1]}
	db := ts.db()
	ctx := context.Background()
	lock := func(table string) *sql.Conn {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "LOCK TABLES `"+table+"` WRITE"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = c.ExecContext(ctx, "UNLOCK TABLES"); _ = c.Close() })
		return c
	}

	const n = 20
	senders := make([]*client, n)
	for i := range senders {
		senders[i], _ = login(t, ts, fmt.Sprintf("sender-%d", i), "")
	}
	grouper, _ := login(t, ts, "grouper", "")

	offlineLock := lock(ts.cfg.Offline.Table)
	lock(ts.cfg.Groups.Table)
	for i, c := range senders {
		c.sendJSON(map[string]string{"flag": "msg", "from": fmt.Sprintf("sender-%d", i), "to": "offline-bob", "content": "m", "cid": "c1"})
	}
	grouper.sendJSON(map[string]string{"flag": "group", "from": "grouper", "to": "g1", "content": "stuck"})
	eventually(t, "every message queued", func() bool { return ts.queued() == n })

	go func() {
		time.Sleep(budget/2 + 300*time.Millisecond) // past the connections' half
		_, _ = offlineLock.ExecContext(ctx, "UNLOCK TABLES")
	}()
	start := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	werr := srv.cmd.Wait()
	srv.cmd = nil
	took := time.Since(start)
	logs, _ := os.ReadFile(srv.log.Name())
	t.Logf("the server stopped after %v (%v)", took, werr)
	if took > budget+time.Second {
		t.Errorf("the shutdown took %v; the budget is %v", took, budget)
	}
	unfinished := func(stage string) bool {
		return strings.Contains(string(logs), `"stage":"`+stage+`"`)
	}
	if werr == nil || !unfinished("connections") {
		t.Errorf("exit %v; want the connections stage reported unfinished:\n%s", werr, logs)
	}
	if unfinished("offline writer") {
		t.Errorf("the offline writer had no time left:\n%s", logs)
	}
	var rows int
	if err := db.QueryRow("SELECT COUNT(*) FROM `" + ts.cfg.Offline.Table + "` WHERE `to` = 'offline-bob'").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != n {
		t.Fatalf("%d of %d queued messages written at shutdown", rows, n)
	}
}
