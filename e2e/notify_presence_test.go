package e2e

import (
	"testing"
	"time"

	"chatserver/config"
)

// presenceEvents lists the presence events the receiver took, in order.
func (r *receiver) presenceEvents() []notifyEvent {
	var out []notifyEvent
	for _, ev := range r.taken() {
		if ev.Body["type"] == "presence" {
			out = append(out, ev)
		}
	}
	return out
}

// With notify.presence, an account connected on two nodes (one of them a
// separate process) is reported online once and offline once, signed like
// the other events: its connection closing on one node while it stays on the
// other is no change, and a reconnect within notify.presence_debounce sends
// nothing. The site fails the first post: it is retried with the same id and
// taken once.
func TestNotifyPresence(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 1)
	const debounce = 500 * time.Millisecond
	quiet := 3 * debounce // long enough for a change to have been reported
	nodes := startCluster(t, 1, notifyConfig(rcv, time.Second, 100*time.Millisecond), func(c *config.Config) {
		c.Notify.Presence = true
		c.Notify.PresenceDebounce = debounce
	})
	n1 := nodes[0]
	_, url2 := notifyProc(t, n1, buildServer(t), "n8", rcv, time.Second,
		"CHAT_NOTIFY_PRESENCE=true", "CHAT_NOTIFY_PRESENCE_DEBOUNCE="+debounce.String())

	bob1, _ := login(t, n1, "bob", "")
	eventually(t, "bob reported online", func() bool { return len(rcv.presenceEvents()) == 1 })
	bob2 := dial(t, url2)
	bob2.send(`{"flag":"init","from":"bob"}`)
	bob2.sync()
	_ = bob1.ws.Close() // still connected on the other node
	time.Sleep(quiet)
	// The other node's process saw bob leave and come back quickly.
	_ = bob2.ws.Close()
	time.Sleep(debounce / 5)
	bob3, _ := login(t, n1, "bob", "")
	time.Sleep(quiet)
	if got := rcv.presenceEvents(); len(got) != 1 {
		t.Fatalf("presence events = %+v; want only the first online (no change since)", got)
	}
	closed := time.Now()
	_ = bob3.ws.Close()
	eventually(t, "bob reported offline", func() bool { return len(rcv.presenceEvents()) >= 2 })
	time.Sleep(quiet)

	got := rcv.presenceEvents()
	if len(got) != 2 || got[0].Body["state"] != "online" || got[1].Body["state"] != "offline" {
		t.Fatalf("presence events = %+v; want bob online, then offline", got)
	}
	for _, ev := range got {
		if ev.Account != "bob" {
			t.Fatalf("presence event for %s: %v", ev.Account, ev.Body)
		}
	}
	if at, _ := got[1].Body["at"].(float64); int64(at) < closed.Unix()-1 || int64(at) > closed.Unix()+1 {
		t.Fatalf("offline at %v; want about %d (when the last connection closed)", got[1].Body["at"], closed.Unix())
	}
	posts, bad := rcv.stats()
	if bad != 0 || posts != 3 {
		t.Fatalf("posts = %d, bad signatures %d; want 3 (one refused, then both taken)", posts, bad)
	}
	rcv.mu.Lock()
	refused := rcv.posts[0]
	rcv.mu.Unlock()
	if refused.Taken || refused.ID != got[0].ID {
		t.Fatalf("the refused post %+v; want the online event %s, posted again with its id", refused, got[0].ID)
	}
	if n1.outboxRows() != 0 {
		t.Fatalf("outbox rows left: %d", n1.outboxRows())
	}
}
