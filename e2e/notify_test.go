package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"chatserver/config"
)

const notifySecret = "notify-test-secret"

// notifyEvent is what the receiver kept of one post the server made.
type notifyEvent struct {
	ID      string
	Body    map[string]any
	Account string
	Count   int
	Taken   bool // answered 2xx
}

// receiver is the site's end of the notification hook: it checks every
// post's signature (its own HMAC, not the server's code) and answers 500 to
// the first failFirst posts.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	failFirst int
	failAll   bool
	posts     []notifyEvent
	badSig    int
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	r := &receiver{t: t, failFirst: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ts := req.Header.Get("X-Chat-Timestamp")
	mac := hmac.New(sha256.New, []byte(notifySecret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts == "" || !hmac.Equal([]byte(want), []byte(req.Header.Get("X-Chat-Signature"))) {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		r.badSig++
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	ev := notifyEvent{ID: req.Header.Get("X-Chat-Event-Id"), Body: m}
	ev.Account, _ = m["account"].(string)
	if c, ok := m["count"].(float64); ok {
		ev.Count = int(c)
	}
	if ev.ID == "" || m["event_id"] != ev.ID {
		r.t.Errorf("event id header %q, body %v; want the same, non-empty", ev.ID, m["event_id"])
	}
	fail := r.failAll || r.failFirst > 0
	if r.failFirst > 0 {
		r.failFirst--
	}
	ev.Taken = !fail
	r.posts = append(r.posts, ev)
	if fail {
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// taken lists the events answered 2xx.
func (r *receiver) taken() []notifyEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []notifyEvent
	for _, p := range r.posts {
		if p.Taken {
			out = append(out, p)
		}
	}
	return out
}

func (r *receiver) stats() (posts, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.posts), r.badSig
}

func notifyConfig(r *receiver, grace, window time.Duration) func(*config.Config) {
	return func(c *config.Config) {
		c.Notify.URL = r.srv.URL
		c.Notify.Secret = notifySecret
		c.Notify.Grace = grace
		c.Notify.BatchWindow = window
		c.Notify.RetryBase = 50 * time.Millisecond
	}
}

// outboxRows counts the events still waiting in the outbox.
func (ts *testServer) outboxRows() int {
	ts.t.Helper()
	var n int
	if err := ts.db().QueryRow("SELECT COUNT(*) FROM app_notify_outbox").Scan(&n); err != nil {
		ts.t.Fatalf("count outbox rows: %v", err)
	}
	return n
}

// Three messages stored for an account that is not connected make one signed
// event with count 3, the senders and the newest content cut to
// notify.preview_bytes; a group message counts as well. The outbox is empty
// once the site took the event.
func TestNotifyBatchedAndSigned(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			rcv := newReceiver(t, 0)
			ts := startServer(t, backend, func(c *config.Config) {
				notifyConfig(rcv, 300*time.Millisecond, 300*time.Millisecond)(c)
				c.Notify.PreviewBytes = 2
			})
			ts.mustAddMembers("team", []string{"alice", "carol", "bob"})
			alice, _ := login(t, ts, "alice", "")
			carol, _ := login(t, ts, "carol", "")
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"one"}`)
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"two"}`)
			alice.sync()
			carol.send(`{"flag":"group","from":"carol","to":"team","content":"héllo"}`)
			carol.sync()

			eventually(t, "an event for bob", func() bool { return len(rcv.taken()) >= 1 })
			eventually(t, "the outbox emptied", func() bool { return ts.outboxRows() == 0 })
			got := rcv.taken()
			if len(got) != 1 {
				t.Fatalf("events = %+v; want one for bob", got)
			}
			ev := got[0]
			if ev.Account != "bob" || ev.Count != 3 || ev.Body["type"] != "offline_messages" {
				t.Fatalf("event = %v; want bob, count 3, offline_messages", ev.Body)
			}
			senders, _ := ev.Body["senders"].([]any)
			if len(senders) != 2 || senders[0] != "alice" || senders[1] != "carol" {
				t.Fatalf("senders = %v; want [alice carol]", ev.Body["senders"])
			}
			groups, _ := ev.Body["groups"].([]any)
			if len(groups) != 1 || groups[0] != "team" {
				t.Fatalf("groups = %v; want [team]", ev.Body["groups"])
			}
			// "héllo" cut to 2 bytes would split é: only "h" is kept.
			if p, _ := ev.Body["preview"].(map[string]any); p["from"] != "carol" || p["content"] != "h" || p["group"] != "team" {
				t.Fatalf("preview = %v; want carol's, content \"h\", group team", ev.Body["preview"])
			}
			if _, bad := rcv.stats(); bad != 0 {
				t.Fatalf("%d posts failed the signature check", bad)
			}
		})
	}
}

// An account that inits within notify.grace gets no event; one that does not
// (carol, stored for later) does, and its event arriving says bob's time
// has passed too.
func TestNotifyCancelledByInit(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			rcv := newReceiver(t, 0)
			ts := startServer(t, backend, notifyConfig(rcv, 3*time.Second, 100*time.Millisecond))
			alice, _ := login(t, ts, "alice", "")
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"are you there"}`)
			alice.sync()
			eventually(t, "bob's row stored", func() bool { return ts.unsent("bob", "") == 1 })
			bob, drained := login(t, ts, "bob", "")
			if joined(contents(drained)) != "are you there" {
				t.Fatalf("bob's drain = %v", drained)
			}
			_ = bob.ws.Close()
			alice.send(`{"flag":"msg","from":"alice","to":"carol","content":"later"}`)
			alice.sync()

			eventually(t, "carol's event", func() bool { return len(rcv.taken()) >= 1 })
			for _, ev := range rcv.taken() {
				if ev.Account != "carol" {
					t.Fatalf("event for %s = %v; want carol's only (bob came back within the grace period)", ev.Account, ev.Body)
				}
			}
			if n := ts.metric("chat_notify_cancelled_total"); n != 1 {
				t.Fatalf("chat_notify_cancelled_total = %v; want 1", n)
			}
		})
	}
}

// A site that fails for a while and then recovers gets every event, each
// taken once by id; the row of a node that died (claimed, its lease run out)
// is sent by this one.
func TestNotifyRetriedUntilTaken(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			rcv := newReceiver(t, 4)
			ts := startServer(t, backend, notifyConfig(rcv, 0, 50*time.Millisecond))
			// A row a dead node claimed: its lease ended a second ago.
			past := time.Now().Add(-time.Second).UnixMilli()
			if _, err := ts.db().Exec("INSERT INTO app_notify_outbox (`event_id`, `account`, `payload`, `attempts`, `next_at`, `claimed_by`, `created`) VALUES (?, ?, ?, 0, ?, ?, ?)",
				"left-by-dead-node", "erin", `{"event_id":"left-by-dead-node","type":"offline_messages","account":"erin","count":1}`, past, "dead-node", past); err != nil {
				t.Fatalf("insert a dead node's row: %v", err)
			}
			alice, _ := login(t, ts, "alice", "")
			for _, to := range []string{"bob", "carol", "dave"} {
				alice.send(`{"flag":"msg","from":"alice","to":"` + to + `","content":"hi"}`)
			}
			alice.sync()

			eventually(t, "four events taken", func() bool { return len(rcv.taken()) >= 4 })
			eventually(t, "the outbox emptied", func() bool { return ts.outboxRows() == 0 })
			byAccount := map[string]int{}
			byID := map[string]int{}
			for _, ev := range rcv.taken() {
				byAccount[ev.Account]++
				byID[ev.ID]++
			}
			for _, a := range []string{"bob", "carol", "dave", "erin"} {
				if byAccount[a] != 1 {
					t.Errorf("events taken for %s = %d; want 1 (all: %v)", a, byAccount[a], byAccount)
				}
			}
			for id, n := range byID {
				if n != 1 {
					t.Errorf("event %s taken %d times; want once", id, n)
				}
			}
			if posts, _ := rcv.stats(); posts < 8 {
				t.Errorf("posts = %d; want at least 8 (4 refused, 4 taken)", posts)
			}
			if n := ts.metric("chat_notify_dead_total"); n != 0 {
				t.Errorf("chat_notify_dead_total = %v; want 0", n)
			}
			if s := ts.metric("chat_notify_failing_seconds"); s != 0 {
				t.Errorf("chat_notify_failing_seconds = %v; want 0 once the site took a post", s)
			}
		})
	}
}

// An event the site keeps refusing is given up after notify.max_attempts
// posts and counted as dead.
func TestNotifyDeadLetter(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 0)
	rcv.failAll = true
	ts := startServer(t, "embedded", func(c *config.Config) {
		notifyConfig(rcv, 0, 50*time.Millisecond)(c)
		c.Notify.MaxAttempts = 3
	})
	alice, _ := login(t, ts, "alice", "")
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"hi"}`)
	alice.sync()
	eventually(t, "the event given up", func() bool { return ts.metric("chat_notify_dead_total") == 1 })
	if n := ts.outboxRows(); n != 0 {
		t.Fatalf("outbox rows = %d; want 0 once given up", n)
	}
	if posts, _ := rcv.stats(); posts != 3 {
		t.Fatalf("posts = %d; want 3 (notify.max_attempts)", posts)
	}
	if s := ts.metric("chat_notify_failing_seconds"); s <= 0 {
		t.Fatalf("chat_notify_failing_seconds = %v; want above 0 while the site refuses every post", s)
	}
}

// Without notify.url nothing is kept: no outbox table.
func TestNotifyOffKeepsNothing(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "embedded", nil)
	alice, _ := login(t, ts, "alice", "")
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"hi"}`)
	alice.sync()
	var n int
	if err := ts.db().QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE name = 'app_notify_outbox'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("app_notify_outbox exists without notify.url")
	}
}

// With several nodes, an init on another node than the one that stored the
// message cancels the event too: before writing it out, the storing node
// asks the account map whether the account is connected anywhere.
func TestNotifyCancelledByInitOnAnotherNode(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 0)
	nodes := startCluster(t, 2, notifyConfig(rcv, 3*time.Second, 100*time.Millisecond))
	alice, _ := login(t, nodes[0], "alice", "")
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"are you there"}`)
	alice.sync()
	eventually(t, "bob's row stored", func() bool { return nodes[0].unsent("bob", "") == 1 })
	bob, drained := login(t, nodes[1], "bob", "")
	if joined(contents(drained)) != "are you there" {
		t.Fatalf("bob's drain on the other node = %v", drained)
	}
	alice.send(`{"flag":"msg","from":"alice","to":"carol","content":"later"}`)
	alice.sync()

	eventually(t, "carol's event", func() bool { return len(rcv.taken()) >= 1 })
	for _, ev := range rcv.taken() {
		if ev.Account != "carol" {
			t.Fatalf("event for %s = %v; want carol's only (bob is connected on another node)", ev.Account, ev.Body)
		}
	}
	if n := nodes[0].metric("chat_notify_cancelled_total") + nodes[1].metric("chat_notify_cancelled_total"); n != 1 {
		t.Fatalf("chat_notify_cancelled_total over both nodes = %v; want 1", n)
	}
	bob.send(`{"type":"heart"}`) // bob stayed connected throughout
	if f := bob.next(5 * time.Second); f["flag"] != "pong" {
		t.Fatalf("bob's heart answered with %v", f)
	}
}

// A message written to a connection that acknowledges what it receives, and
// stored again because that connection dropped before the receiver's ack,
// makes an event like a message stored at once.
func TestNotifyRequeuedMessage(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 0)
	ts := startServer(t, "embedded", notifyConfig(rcv, 200*time.Millisecond, 50*time.Millisecond))
	alice, _ := login(t, ts, "alice", "")
	bob := dial(t, ts.url)
	bob.send(`{"flag":"init","from":"bob","ack":true}`)
	bob.sync()
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"unread"}`)
	if f := bob.next(5 * time.Second); f["content"] != "unread" {
		t.Fatalf("bob got %v", f)
	}
	bob.drop()
	eventually(t, "the message stored again", func() bool { return ts.unsent("bob", "") == 1 })
	eventually(t, "bob's event", func() bool { return len(rcv.taken()) >= 1 })
	got := rcv.taken()
	if len(got) != 1 || got[0].Account != "bob" || got[0].Count != 1 {
		t.Fatalf("events = %+v; want one for bob, count 1", got)
	}
}
