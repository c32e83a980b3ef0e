package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"chatserver/config"
)

func TestShutdownPlan(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := planShutdown(t0, 10*time.Second)
	want := shutdownPlan{
		api:         t0.Add(1250 * time.Millisecond),
		connections: t0.Add(5 * time.Second),
		writer:      t0.Add(9 * time.Second),
		end:         t0.Add(10 * time.Second),
	}
	if p != want {
		t.Fatalf("plan for 10 s = %+v; want %+v", p, want)
	}
	for _, budget := range []time.Duration{100 * time.Millisecond, time.Second, 10 * time.Second, time.Minute, 10 * time.Minute} {
		p := planShutdown(t0, budget)
		switch {
		case p.connections.Sub(t0) > budget/2:
			t.Errorf("%v: the connections may take %v, over half", budget, p.connections.Sub(t0))
		case p.writer.Sub(p.connections) < budget*2/5:
			t.Errorf("%v: the writer is left %v after the connections; want at least 2/5", budget, p.writer.Sub(p.connections))
		case p.end.Sub(p.writer) <= 0 || p.end.Sub(p.writer) > 2*time.Second:
			t.Errorf("%v: the account map is left %v; want some, at most 2 s", budget, p.end.Sub(p.writer))
		case p.end != t0.Add(budget):
			t.Errorf("%v: the plan ends at %v", budget, p.end.Sub(t0))
		case !(t0.Before(p.api) && p.api.Before(p.connections) && p.connections.Before(p.writer)):
			t.Errorf("%v: stages out of order: %+v", budget, p)
		}
	}
}

func TestShutdownBudget(t *testing.T) {
	if got := shutdownBudget(context.Background(), 10*time.Second); got != 10*time.Second {
		t.Errorf("no deadline: %v; want the configured 10 s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if got := shutdownBudget(ctx, 10*time.Second); got > 3*time.Second || got < 2*time.Second {
		t.Errorf("3 s deadline: %v; want about 3 s", got)
	}
	if got := shutdownBudget(ctx, time.Second); got != time.Second {
		t.Errorf("3 s deadline, 1 s configured: %v; want 1 s", got)
	}
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if got := shutdownBudget(done, time.Second); got != time.Second {
		t.Errorf("cancelled without deadline: %v; want the configured 1 s", got)
	}
}

// TestShutdownWriterKeepsItsShare: a handler that will not finish (a group
// lookup stuck on a locked members table) holds the connections stage to its
// half of server.shutdown_timeout; messages waiting for a locked app_offline
// when the shutdown starts are written once it unlocks, after that half, and
// the shutdown reports only the connections stage as unfinished.
func TestShutdownWriterKeepsItsShare(t *testing.T) {
	const budget = 4 * time.Second
	ts := startServer(t, "redis+mariadb", func(c *config.Config) {
		c.Server.ShutdownTimeout = budget
		c.Offline.DrainTimeout = time.Minute // the senders wait for their rows as long as it takes
	})
	db, err := sql.Open("mysql", ts.cfg.MySQL.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
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
	eventually(t, "every message queued", func() bool { return ts.app.writer.Depth() == n })

	go func() {
		time.Sleep(budget/2 + 300*time.Millisecond) // past the connections' half
		_, _ = offlineLock.ExecContext(ctx, "UNLOCK TABLES")
	}()
	a := ts.app
	ts.app = nil // closed here, not by the harness
	start := time.Now()
	cctx, cancel := context.WithTimeout(context.Background(), budget) // as main does
	defer cancel()
	err = a.Close(cctx)
	took := time.Since(start)
	t.Logf("Close took %v: %v", took, err)
	if took > budget+time.Second {
		t.Errorf("Close took %v; the budget is %v", took, budget)
	}
	if err == nil || !strings.Contains(err.Error(), "shutdown connections") {
		t.Errorf("Close = %v; want the connections stage reported unfinished", err)
	}
	if err != nil && strings.Contains(err.Error(), "offline") {
		t.Errorf("Close = %v; the offline writer had no time left", err)
	}
	var rows int
	if err := db.QueryRow("SELECT COUNT(*) FROM `" + ts.cfg.Offline.Table + "` WHERE `to` = 'offline-bob'").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != n {
		t.Fatalf("%d of %d queued messages written at shutdown", rows, n)
	}
}
