package e2e

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"chatserver/config"
	"chatserver/internal/servicetest"
)

// TestRedisAccountMap: init writes account -> node|connection id under the
// configured prefix, close removes exactly that entry, and a stale entry (a
// connection id this node does not have) never routes a message: it is stored.
func TestRedisAccountMap(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "redis+mariadb", nil)
	rdb := redis.NewClient(&redis.Options{Addr: ts.cfg.Redis.Addr})
	defer rdb.Close()
	ctx := context.Background()
	key := func(a string) string { return ts.cfg.Redis.KeyPrefix + "acct:" + a }

	tab1, _ := login(t, ts, "alice", "")
	tab2, _ := login(t, ts, "alice", "")
	var fields []string
	eventually(t, "two entries for alice", func() bool {
		fields, _ = rdb.HKeys(ctx, key("alice")).Result()
		return len(fields) == 2
	})
	for _, f := range fields {
		if !strings.HasPrefix(f, ts.cfg.Node+"|") {
			t.Fatalf("entry %q does not name this node %q", f, ts.cfg.Node)
		}
	}
	if fields[0] == fields[1] {
		t.Fatalf("two connections share the id %q", fields[0])
	}
	_ = tab1.ws.Close()
	eventually(t, "one entry left", func() bool { return rdb.HLen(ctx, key("alice")).Val() == 1 })
	_ = tab2.ws.Close()
	eventually(t, "no entry left", func() bool { return rdb.Exists(ctx, key("alice")).Val() == 0 })

	// A stale entry for bob, as a crashed run of this node would leave it.
	rdb.HSet(ctx, key("bob"), ts.cfg.Node+"|oldrun-1", "1")
	carol, _ := login(t, ts, "carol", "")
	carol.send(`{"flag":"online","to":"bob"}`)
	if f := carol.next(5 * time.Second); f["online"] != false {
		t.Fatalf("online bob with only a stale entry = %v; want false", f)
	}
	carol.send(`{"flag":"msg","from":"carol","to":"bob","content":"kept"}`)
	carol.sync()
	eventually(t, "message to bob stored", func() bool { return ts.unsent("bob", "carol") == 1 })
	_, got := login(t, ts, "bob", "")
	if len(got) != 1 || got[0]["content"] != "kept" {
		t.Fatalf("bob drained %v; want the stored message", got)
	}
}

// TestRestartClearsOwnEntries: a node restarted with the same id removes what
// its previous run left in the account map, and nothing of other nodes.
func TestRestartClearsOwnEntries(t *testing.T) {
	t.Parallel()
	dsn := servicetest.MySQLDSN(t)
	_, prefix := servicetest.Redis(t)
	addr := servicetest.RedisAddr(t)
	mutate := func(c *config.Config) {
		c.Node = "node-a"
		c.MySQL.DSN = dsn
		c.Redis.Addr, c.Redis.KeyPrefix = addr, prefix
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	key := prefix + "acct:alice"

	// What a crashed run of node-a leaves behind, next to another node's entry.
	rdb.HSet(ctx, key, "node-a|oldrun-1", "1", "node-b|x-1", "1")
	rdb.SAdd(ctx, prefix+"node:node-a", "alice")

	startServer(t, "redis+mariadb", mutate)
	fields := rdb.HKeys(ctx, key).Val()
	if len(fields) != 1 || fields[0] != "node-b|x-1" {
		t.Fatalf("after restart alice's entries = %v; want only node-b's", fields)
	}
}

// TestLegacyRowsDelivered: rows the PHP server left in its own table (utf8, no
// index) are delivered through the server at init and marked sent; rows of
// other pairs and already sent rows are left alone.
func TestLegacyRowsDelivered(t *testing.T) {
	t.Parallel()
	dsn := servicetest.MySQLDSN(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE app_offline (id int auto_increment primary key, `from` varchar(50), `to` varchar(50), content varchar(500), status tinyint default 0, addtime int) DEFAULT CHARSET=utf8",
		"INSERT INTO app_offline (`from`,`to`,content,status,addtime) VALUES ('alice','bob','php 1',0,1),('alice','bob','php old',1,2),('alice','bob','php 2',0,3),('alice','carol','not bob',0,4)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	ts := startServer(t, "redis+mariadb", func(c *config.Config) { c.MySQL.DSN = dsn })
	_, got := login(t, ts, "bob", "alice")
	if joined(contents(got)) != "php 1,php 2" {
		t.Fatalf("bob drained %v; want php 1, php 2", got)
	}
	eventually(t, "legacy rows marked sent", func() bool { return ts.unsent("bob", "") == 0 })
	if ts.unsent("carol", "") != 1 {
		t.Fatal("carol's row was touched")
	}
	// Emoji now fit in the converted table.
	alice, _ := login(t, ts, "alice", "")
	alice.send(`{"flag":"msg","from":"alice","to":"dave","content":"🎉"}`)
	alice.sync()
	_, got = func() (*client, []map[string]any) {
		eventually(t, "row for dave", func() bool { return ts.unsent("dave", "") == 1 })
		return login(t, ts, "dave", "")
	}()
	if len(got) != 1 || got[0]["content"] != "🎉" {
		t.Fatalf("dave got %v; want the emoji intact", got)
	}
}
