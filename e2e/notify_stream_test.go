package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"chatserver/config"
)

// With notify.stream, every event is also an entry of a Redis Stream, the
// body the site was posted; while the stream cannot be added to (the key holds
// a string) the event waits, neither posted nor given an attempt, and once it
// can, it is added and posted once.
func TestNotifyStream(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 0)
	ts := startServer(t, "redis+mariadb", func(c *config.Config) {
		notifyConfig(rcv, 0, 50*time.Millisecond)(c)
		c.Notify.Stream = c.Redis.KeyPrefix + "notify-events"
		c.Notify.StreamMaxLen = 1000
	})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: ts.cfg.Redis.Addr})
	defer rdb.Close()
	stream := ts.cfg.Notify.Stream
	if err := rdb.Set(ctx, stream, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}

	alice, _ := login(t, ts, "alice", "")
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"hi"}`)
	alice.sync()
	time.Sleep(time.Second) // several tries at adding the entry
	if posts, _ := rcv.stats(); posts != 0 {
		t.Fatalf("posts = %d while the stream could not be added to; want 0", posts)
	}
	if n := ts.outboxRows(); n != 1 {
		t.Fatalf("outbox rows = %d; want bob's event waiting", n)
	}
	if err := rdb.Del(ctx, stream).Err(); err != nil {
		t.Fatal(err)
	}
	alice.send(`{"flag":"msg","from":"alice","to":"carol","content":"hi"}`)
	alice.sync()

	eventually(t, "both events posted", func() bool { return len(rcv.taken()) >= 2 })
	eventually(t, "the outbox emptied", func() bool { return ts.outboxRows() == 0 })
	entries, err := rdb.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	taken := rcv.taken()
	if len(entries) != 2 || len(taken) != 2 {
		t.Fatalf("stream entries %d, events taken %d; want 2 and 2", len(entries), len(taken))
	}
	byID := map[string]map[string]any{}
	for _, ev := range taken {
		byID[ev.ID] = ev.Body
	}
	for _, e := range entries {
		id, _ := e.Values["event_id"].(string)
		var body map[string]any
		if err := json.Unmarshal([]byte(e.Values["event"].(string)), &body); err != nil {
			t.Fatalf("entry %v: %v", e.Values, err)
		}
		posted, ok := byID[id]
		if !ok || body["event_id"] != id || body["account"] != posted["account"] || body["count"] != posted["count"] {
			t.Fatalf("stream entry %v; want the body posted with id %s (%v)", e.Values, id, posted)
		}
	}
	if n := ts.metric("chat_notify_dead_total"); n != 0 {
		t.Fatalf("chat_notify_dead_total = %v; want 0 (a stream fault is no failed post)", n)
	}
}
