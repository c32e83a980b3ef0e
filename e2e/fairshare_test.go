package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"chatserver/config"
)

// stallOffline makes MariaDB hold every write to the offline table (LOCK TABLES
// from a session of our own) until the returned function is called (also at
// cleanup): the database is up but not keeping up.
func stallOffline(t *testing.T, ts *testServer) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := ts.db().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "LOCK TABLES app_offline WRITE"); err != nil {
		t.Fatal(err)
	}
	var done bool
	release = func() {
		if done {
			return
		}
		done = true
		_, _ = conn.ExecContext(ctx, "UNLOCK TABLES")
		_ = conn.Close()
	}
	t.Cleanup(release)
	return release
}

// stalledServer runs against MariaDB without a spool (so a slow database holds
// messages in the queue) with a small queue.
func stalledServer(t *testing.T, queue, share int) *testServer {
	return startServer(t, "redis+mariadb", func(c *config.Config) {
		c.Offline.SpoolPath = ""
		c.Offline.BatchSize = 10
		c.Offline.QueueLimit = queue
		c.Offline.SenderQueueShare = share
		c.Offline.DrainTimeout = 20 * time.Second
	})
}

func addGroup(t *testing.T, ts *testServer, group string, accounts []string) {
	t.Helper()
	ts.mustAddMembers(group, accounts)
}

// frames reads what arrives until the connection is quiet for quiet.
func (c *client) frames(quiet time.Duration) []map[string]any {
	c.t.Helper()
	var out []map[string]any
	for {
		m, err := c.read(quiet)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return out // gorilla cannot read after a timeout: the last read on c
		}
		if err != nil {
			c.t.Fatalf("reading: %v", err)
		}
		out = append(out, m)
	}
}

// TestOneSenderCannotFillTheOfflineQueue: while the database lags, a member
// sending again and again to a big group whose members are offline fills only
// its share of the write queue: it gets busy, each group message is stored for
// all its members or for none, and another sender's one-to-one offline message
// still gets in and is acknowledged stored.
func TestOneSenderCannotFillTheOfflineQueue(t *testing.T) {
	t.Parallel()
	ts := stalledServer(t, 200, 40)
	members := []string{"flood"}
	for i := 0; i < 30; i++ {
		members = append(members, fmt.Sprint("m", i))
	}
	addGroup(t, ts, "big", members)
	flood, _ := login(t, ts, "flood", "")
	other, _ := login(t, ts, "other", "")
	release := stallOffline(t, ts)

	for i := 0; i < 8; i++ { // 8 x 30 rows: more than the whole queue
		flood.sendJSON(map[string]string{"flag": "group", "from": "flood", "to": "big", "content": fmt.Sprint("g", i)})
	}
	busy := 0
	for _, f := range flood.sync() {
		if f["flag"] != "error" || f["code"] != "busy" {
			t.Fatalf("flood got %v; want only busy errors", f)
		}
		busy++
	}
	if busy != 7 {
		t.Fatalf("flood got %d busy errors for 8 group messages; want 7 (one message fits its share of 40 rows)", busy)
	}
	depth := ts.queued()
	other.sendJSON(map[string]string{"flag": "msg", "from": "other", "to": "carol", "content": "hello", "cid": "c1"})
	eventually(t, "other's message queued behind flood's", func() bool { return ts.queued() == depth+1 })
	release()
	ack := other.next(20 * time.Second)
	if ack["flag"] != "ack" || ack["status"] != "stored" || ack["cid"] != "c1" {
		t.Fatalf("other got %v; want a stored ack for c1", ack)
	}
	eventually(t, "the queue written", func() bool { return ts.queued() == 0 })
	var rows int
	if err := ts.db().QueryRow("SELECT COUNT(*) FROM app_offline WHERE `from` = ?", "flood").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 30 {
		t.Fatalf("%d rows from flood stored; want 30 (one group message whole, none half)", rows)
	}
	if n := ts.unsent("carol", "other"); n != 1 {
		t.Fatalf("%d rows for carol from other; want 1", n)
	}
}

// TestRequeuePastAFullQueue: messages pushed to an acknowledging connection
// that closes without acknowledging them go back to the offline pool even when
// the write queue is full at that moment (they were accepted long before), and
// come at the next init.
func TestRequeuePastAFullQueue(t *testing.T) {
	t.Parallel()
	ts := stalledServer(t, 50, 50)
	members := []string{"filler"}
	for i := 0; i < 50; i++ {
		members = append(members, fmt.Sprint("m", i))
	}
	addGroup(t, ts, "fifty", members)
	sender, _ := login(t, ts, "sender", "")
	filler, _ := login(t, ts, "filler", "")
	bob := dial(t, ts.url)
	bob.send(`{"flag":"init","from":"bob","ack":true}`)
	bob.sync()
	for i := 1; i <= 3; i++ {
		sender.sendJSON(map[string]string{"flag": "msg", "from": "sender", "to": "bob", "content": fmt.Sprint("s", i)})
		if f := bob.next(5 * time.Second); f["content"] != fmt.Sprint("s", i) {
			t.Fatalf("bob got %v; want s%d", f, i)
		}
	}
	release := stallOffline(t, ts)
	filler.send(`{"flag":"group","from":"filler","to":"fifty","content":"fill"}`)
	if got := filler.sync(); len(got) != 0 {
		t.Fatalf("filler got %v; want nothing (its message fills the queue)", got)
	}
	sender.send(`{"flag":"msg","from":"sender","to":"carol","content":"new"}`)
	if got := sender.sync(); len(got) != 1 || got[0]["code"] != "busy" {
		t.Fatalf("a new message into the full queue got %v; want busy", got)
	}
	bob.drop() // s1..s3 were never acknowledged: they go back to the pool
	eventually(t, "bob's unacknowledged messages queued past the full queue", func() bool {
		return ts.queued() == 53
	})
	release()
	bob2 := dial(t, ts.url)
	bob2.send(`{"flag":"init","from":"bob","ack":true}`)
	if got := contents(bob2.sync()); joined(got) != "s1,s2,s3" {
		t.Fatalf("bob got %v at the next init; want s1,s2,s3", got)
	}
}
