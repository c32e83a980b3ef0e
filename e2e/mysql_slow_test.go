package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"chatserver/config"
	"chatserver/internal/faultproxy"
)

// TestSlowMySQLStoresEachMessageOnce is the operator's case: MySQL answers 2 s
// late for 12 s (the writes still commit, after the writer's 3 s deadline, so the
// writer spools them and moves them again later). Every message the sender got
// a stored ack for is in the table exactly once, and the recipient's init gets
// each once, in send order.
func TestSlowMySQLStoresEachMessageOnce(t *testing.T) {
	t.Parallel()
	var proxy *faultproxy.Proxy
	ts := startServer(t, "redis+mariadb", func(c *config.Config) {
		dsn, err := mysql.ParseDSN(c.MySQL.DSN)
		if err != nil {
			t.Fatal(err)
		}
		if proxy, err = faultproxy.Start(dsn.Addr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = proxy.Close() })
		dsn.Addr = proxy.Addr()
		c.MySQL.DSN = dsn.FormatDSN()
	})
	alice, _ := login(t, ts, "alice", "")

	const n = 30
	acks := make(chan map[string]any, n)
	go func() {
		defer close(acks)
		for range n {
			f, err := alice.read(40 * time.Second)
			if err != nil {
				return
			}
			acks <- f
		}
	}()

	// The proxy delays each direction, so 1 s makes every round trip 2 s late.
	// An insert is two round trips (prepare, execute): the execute goes out
	// before the 3 s deadline and commits, its answer comes after it. (With 2 s
	// a way, the prepare alone outlasts the deadline and nothing commits late.)
	const slowFor = 12 * time.Second
	proxy.Set(faultproxy.Delay, time.Second)
	healAt := time.Now().Add(slowFor)
	for i := range n {
		s := strconv.Itoa(i)
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": s, "cid": s})
		time.Sleep(slowFor * 3 / 4 / n)
	}
	ids := map[string]bool{}
	for range n {
		select {
		case f, ok := <-acks:
			if !ok {
				t.Fatalf("the connection ended after %d acks", len(ids))
			}
			if f["flag"] != "ack" || f["status"] != "stored" {
				t.Fatalf("got %v; want a stored ack", f)
			}
			id, _ := f["id"].(string)
			ids[id] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d acks after 30 s", len(ids), n)
		}
	}
	time.Sleep(time.Until(healAt))
	proxy.Set(faultproxy.Pass, 0)

	deadline := time.Now().Add(20 * time.Second)
	for ts.spooled() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the spool still holds %d rows 20 s after MySQL healed", ts.spooled())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var rows, distinct int
	err := ts.db().QueryRowContext(context.Background(),
		"SELECT COUNT(*), COUNT(DISTINCT `msg_id`) FROM app_offline WHERE `to` = 'bob'").Scan(&rows, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	if rows != n || distinct != n {
		t.Fatalf("bob has %d rows with %d distinct msg_ids; want %d and %d", rows, distinct, n, n)
	}
	_, got := login(t, ts, "bob", "")
	if len(got) != n {
		t.Fatalf("bob's init got %d messages; want %d", len(got), n)
	}
	for i, f := range got {
		if id, _ := f["id"].(string); f["content"] != strconv.Itoa(i) || !ids[id] {
			t.Fatalf("message %d is %v: lost, repeated or out of order", i, f)
		}
	}
}
