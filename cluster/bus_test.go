package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"chatserver/internal/servicetest"
	"chatserver/presence"
)

// node is one bus running against the real Redis, with what it received. Its
// handler answers every copy with answer (Pushed unless the test says).
type node struct {
	bus    *Bus
	got    chan Envelope
	answer Outcome
}

// startNodes runs a bus per name, each with a Redis client of its own, all
// under one key prefix; they stop when the test ends.
func startNodes(t *testing.T, names ...string) (map[string]*node, *redis.Client, string) {
	t.Helper()
	admin, prefix := servicetest.Redis(t)
	nodes := map[string]*node{}
	for _, name := range names {
		nodes[name] = runNode(t, prefix, name, Options{})
	}
	// Inboxes are streams (made by Open); announcements are pub/sub: wait
	// until every node listens.
	servicetest.Eventually(t, 5*time.Second, "every node subscribed to announcements", func() bool {
		got, _ := admin.PubSubNumSub(context.Background(), prefix+"all").Result()
		return got[prefix+"all"] == int64(len(names))
	})
	return nodes, admin, prefix
}

func runNode(t *testing.T, prefix, name string, opts Options) *node {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: servicetest.RedisAddr(t)})
	n := &node{bus: New(rdb, prefix, name, zerolog.New(zerolog.NewTestWriter(t)), opts), got: make(chan Envelope, 100), answer: Pushed}
	if err := n.bus.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.bus.Run(ctx, func(e Envelope, r *Reply) {
			n.got <- e
			for i := range e.To {
				r.Report(i, n.answer)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = rdb.Close()
	})
	return n
}

func (n *node) next(t *testing.T) Envelope {
	t.Helper()
	select {
	case e := <-n.got:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no envelope within 5 s")
		return Envelope{}
	}
}

// send sends env from n to node and returns the outcomes, once they come.
func (n *node) send(t *testing.T, to string, env Envelope) <-chan []Outcome {
	t.Helper()
	ch := make(chan []Outcome, 1)
	if err := n.bus.Send(context.Background(), to, env, func(o []Outcome) { ch <- o }); err != nil {
		t.Fatal(err)
	}
	return ch
}

func outcomes(t *testing.T, ch <-chan []Outcome, within time.Duration) []Outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(within):
		t.Fatalf("no outcome within %v", within)
		return nil
	}
}

// TestSendReachesThatNodeOnly: an envelope sent to a node's inbox reaches that
// node's handler, whole and stamped with its origin, and no other node; the
// sender hears what became of each copy.
func TestSendReachesThatNodeOnly(t *testing.T) {
	nodes, _, _ := startNodes(t, "n1", "n2", "n3")
	sent := Envelope{Kind: "msg", From: "alice", To: []string{"bob", "bea"}, Content: "hi", ID: "m1", AddTime: 42, Store: true}
	nodes["n2"].answer = Stored
	res := nodes["n1"].send(t, "n2", sent)
	got := nodes["n2"].next(t)
	want := sent
	want.Origin, want.Seq, want.Sent = "n1", got.Seq, got.Sent
	if !reflect.DeepEqual(got, want) || got.Seq == 0 || got.Sent == 0 {
		t.Fatalf("n2 got %+v; want %+v with a seq and a time", got, want)
	}
	if o := outcomes(t, res, 5*time.Second); !reflect.DeepEqual(o, []Outcome{Stored, Stored}) {
		t.Fatalf("n1 heard %q; want both stored", o)
	}
	// A marker sent after it reaches n3 first: n3 never saw the envelope for n2.
	nodes["n1"].send(t, "n3", Envelope{Kind: "msg", From: "marker", To: []string{"x"}})
	if got := nodes["n3"].next(t); got.From != "marker" {
		t.Fatalf("n3 got %+v first; want the marker (the envelope was for n2)", got)
	}
}

// TestUnansweredEnvelopeIsTakenBack: an envelope to a node that does not read
// its inbox (frozen or dead) is answered NotTaken after the confirmation
// timeout, its entry is gone from the inbox, so the node, reading later,
// never delivers it; and the node is skipped by Locate for a while.
func TestUnansweredEnvelopeIsTakenBack(t *testing.T) {
	admin, prefix := servicetest.Redis(t)
	n1 := runNode(t, prefix, "n1", Options{ConfirmTimeout: 300 * time.Millisecond})
	frozen := New(admin, prefix, "n2", zerolog.Nop(), Options{})
	if err := frozen.Open(context.Background()); err != nil { // its inbox exists, nobody reads it
		t.Fatal(err)
	}
	start := time.Now()
	res := n1.send(t, "n2", Envelope{Kind: "msg", From: "alice", To: []string{"bob", "bea"}, Content: "hi", Store: true})
	if o := outcomes(t, res, 5*time.Second); !reflect.DeepEqual(o, []Outcome{NotTaken, NotTaken}) {
		t.Fatalf("outcome %q; want not taken for both", o)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("answered after %v, before the confirmation timeout", d)
	}
	if n, err := admin.XLen(context.Background(), prefix+"inbox:{n2}").Result(); err != nil || n != 0 {
		t.Fatalf("n2's inbox holds %d entries (%v); want the envelope taken back", n, err)
	}
	// n2 wakes up and reads: nothing for it.
	n2 := runNode(t, prefix, "n2", Options{})
	n1.send(t, "n2", Envelope{Kind: "msg", From: "marker", To: []string{"x"}})
	if got := n2.next(t); got.From != "marker" {
		t.Fatalf("n2 got %+v first; want the marker (the first envelope was taken back)", got)
	}
}

// TestLateEnvelopeLeftToItsSender: an envelope read after its sender's
// timeout (the reader was frozen) is not delivered while its sender is alive
// (the sender stores it), and is delivered when its sender is dead (nobody
// else would).
func TestLateEnvelopeLeftToItsSender(t *testing.T) {
	admin, prefix := servicetest.Redis(t)
	ctx := context.Background()
	n2 := runNode(t, prefix, "n2", Options{ConfirmTimeout: time.Second})
	old := time.Now().Add(-10 * time.Second).UnixMilli()
	add := func(env Envelope) {
		payload, _ := json.Marshal(env)
		if err := admin.XAdd(ctx, &redis.XAddArgs{Stream: prefix + "inbox:{n2}", Values: []any{"e", payload}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Set(ctx, prefix+"alive:n1", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	add(Envelope{Kind: "msg", Origin: "n1", Seq: 1, Sent: old, From: "from-live-sender", To: []string{"bob"}})
	add(Envelope{Kind: "msg", Origin: "n9", Seq: 1, Sent: old, From: "from-dead-sender", To: []string{"bob"}})
	if got := n2.next(t); got.From != "from-dead-sender" {
		t.Fatalf("n2 delivered %+v; want only the envelope whose sender is dead", got)
	}
}

// TestLateDrainRequestIsTaken: once an envelope of a live sender was left
// (read after its sender's timeout), the next ones it sent within that
// timeout are left too, each holding back those sent within its own; but a
// drain request among them is delivered, and holds back nothing: what the
// sender sends after the first one's window is delivered.
func TestLateDrainRequestIsTaken(t *testing.T) {
	admin, prefix := servicetest.Redis(t)
	ctx := context.Background()
	const confirm = 4 * time.Second
	n2 := runNode(t, prefix, "n2", Options{ConfirmTimeout: confirm})
	now := time.Now()
	at := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	add := func(env Envelope) {
		payload, _ := json.Marshal(env)
		if err := admin.XAdd(ctx, &redis.XAddArgs{Stream: prefix + "inbox:{n2}", Values: []any{"e", payload}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Set(ctx, prefix+"alive:n1", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	// Left until -6 s + 4 s = -2 s.
	add(Envelope{Kind: "msg", Origin: "n1", Seq: 1, Sent: at(-6 * time.Second), From: "late", To: []string{"bob"}})
	add(Envelope{Kind: KindDrain, Origin: "n1", Seq: 2, Sent: at(-2500 * time.Millisecond), To: []string{"bob"}})
	add(Envelope{Kind: "msg", Origin: "n1", Seq: 4, Sent: at(-time.Second), From: "after", To: []string{"bob"}})
	if got := n2.next(t); got.Kind != KindDrain {
		t.Fatalf("n2 delivered %+v first; want the drain request (the late message and none other before it)", got)
	}
	if got := n2.next(t); got.From != "after" {
		t.Fatalf("n2 delivered %+v; want the message sent after the left one's window", got)
	}
}

// TestControlReachesEveryOtherNode: an order published with Control reaches
// every node but the one that sent it, on a channel of its own (not the
// announcement channel, where a node of an earlier version would take it for
// a message).
func TestControlReachesEveryOtherNode(t *testing.T) {
	nodes, admin, prefix := startNodes(t, "n1", "n2", "n3")
	ctx := context.Background()
	servicetest.Eventually(t, 5*time.Second, "every node subscribed to orders", func() bool {
		got, _ := admin.PubSubNumSub(ctx, prefix+"control").Result()
		return got[prefix+"control"] == 3
	})
	announcements := admin.Subscribe(ctx, prefix+"all")
	defer announcements.Close()
	if _, err := announcements.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nodes["n1"].bus.Control(ctx, Envelope{Kind: "disconnect", To: []string{"mallory"}, Content: "bye"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n2", "n3"} {
		if got := nodes[name].next(t); got.Kind != "disconnect" || got.Content != "bye" || got.Origin != "n1" ||
			!reflect.DeepEqual(got.To, []string{"mallory"}) {
			t.Fatalf("%s got %+v; want the order from n1", name, got)
		}
	}
	if err := nodes["n2"].bus.Control(ctx, Envelope{Kind: "disconnect", To: []string{"marker"}}); err != nil {
		t.Fatal(err)
	}
	if got := nodes["n1"].next(t); !reflect.DeepEqual(got.To, []string{"marker"}) {
		t.Fatalf("n1 got %+v first; want the marker (not its own order)", got)
	}
	select {
	case m := <-announcements.Channel():
		t.Fatalf("an order went out on the announcement channel: %v", m)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestBroadcastReachesEveryOtherNode: a broadcast reaches every node but the
// one that sent it.
func TestBroadcastReachesEveryOtherNode(t *testing.T) {
	nodes, _, _ := startNodes(t, "n1", "n2", "n3")
	ctx := context.Background()
	if err := nodes["n1"].bus.Broadcast(ctx, Envelope{Kind: "all", From: "admin", Content: "news"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n2", "n3"} {
		if got := nodes[name].next(t); got.Kind != "all" || got.Content != "news" || got.Origin != "n1" {
			t.Fatalf("%s got %+v; want the broadcast from n1", name, got)
		}
	}
	// n1 broadcasts again after n2 and n3 saw the first: if n1 heard its own
	// broadcasts, it would have the first one queued before this marker.
	if err := nodes["n2"].bus.Broadcast(ctx, Envelope{Kind: "all", From: "marker"}); err != nil {
		t.Fatal(err)
	}
	if got := nodes["n1"].next(t); got.From != "marker" {
		t.Fatalf("n1 got %+v first; want the marker (not its own broadcast)", got)
	}
}

// TestLocateLiveNodesOnly: Locate finds the accounts a live node registered
// in the account map (each node once, never the asking node), and ignores and
// removes the entries of a node whose liveness key is gone.
func TestLocateLiveNodesOnly(t *testing.T) {
	admin, prefix := servicetest.Redis(t)
	ctx := context.Background()

	// n2 is a live node: its account map writer keeps its liveness key.
	live := presence.NewRedis(admin, prefix, "n2", zerolog.New(zerolog.NewTestWriter(t)), func() []presence.Binding { return nil })
	t.Cleanup(func() { _ = live.Close(context.Background()) })
	if err := live.Rebuild(); err != nil {
		t.Fatal(err)
	}
	live.Register("alice", "c1")
	live.Register("alice", "c2")
	live.Register("bob", "c3")
	if err := live.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// n3 died: its entries stay, its liveness key is gone. n1's own entry is
	// the asking node's and is not reported.
	aliceKey, bobKey := prefix+"acct:alice", prefix+"acct:bob"
	if err := admin.HSet(ctx, aliceKey, "n3|c4", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.HSet(ctx, bobKey, "n1|c5", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.HSet(ctx, prefix+"acct:carol", "n3|c6", "1").Err(); err != nil {
		t.Fatal(err)
	}

	b := New(admin, prefix, "n1", zerolog.New(zerolog.NewTestWriter(t)), Options{})
	got, err := b.Locate(ctx, []string{"alice", "bob", "carol", "dan"})
	if err != nil {
		t.Fatal(err)
	}
	for _, nodes := range got {
		sort.Strings(nodes)
	}
	want := map[string][]string{"alice": {"n2"}, "bob": {"n2"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Locate = %v; want %v (the live node once, not the dead one nor ourselves)", got, want)
	}
	for key, field := range map[string]string{aliceKey: "n3|c4", prefix + "acct:carol": "n3|c6"} {
		deadline := time.Now().Add(5 * time.Second) // removed off the lookup's path
		for {
			ok, err := admin.HExists(ctx, key, field).Result()
			if err == nil && !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("dead node's entry %s %s still there (%v, %v); want it removed", key, field, ok, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for key, field := range map[string]string{aliceKey: "n2|c1", bobKey: "n1|c5"} {
		if ok, err := admin.HExists(ctx, key, field).Result(); err != nil || !ok {
			t.Fatalf("entry %s %s of a live node was removed (%v, %v)", key, field, ok, err)
		}
	}
}

// TestLostInboxIsNotRecreatedBySenders: a node's inbox gone from Redis (a
// restart without its data) took its envelopes with it. A sender does not
// make a new one (its envelope would be read ahead of the lost ones, which
// time out and are stored): Send says ErrInboxGone, and routing is not paused.
// Once the node reads again it makes its inbox, and envelopes reach it.
func TestLostInboxIsNotRecreatedBySenders(t *testing.T) {
	nodes, admin, prefix := startNodes(t, "n1", "n2")
	ctx := context.Background()
	key := prefix + "inbox:{n2}"
	if err := admin.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	err := nodes["n1"].bus.Send(ctx, "n2", Envelope{Kind: "msg", From: "a", To: []string{"b"}}, func([]Outcome) {})
	if !errors.Is(err, ErrInboxGone) {
		t.Fatalf("send to a lost inbox: %v; want ErrInboxGone", err)
	}
	if n, _ := admin.Exists(ctx, key).Result(); n != 0 {
		// The node may have made it again already (its read found no group):
		// then the envelope must not be in it.
		if l, _ := admin.XLen(ctx, key).Result(); l != 0 {
			t.Fatalf("the lost inbox holds %d entries; want the envelope refused", l)
		}
	}
	if err := nodes["n1"].bus.check(); err != nil {
		t.Fatalf("routing paused after a lost inbox: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := nodes["n1"].bus.Send(ctx, "n2", Envelope{Kind: "msg", From: "again", To: []string{"b"}}, func([]Outcome) {})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrInboxGone) || time.Now().After(deadline) {
			t.Fatalf("n2's inbox not back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := nodes["n2"].next(t); got.From != "again" {
		t.Fatalf("n2 got %+v; want the envelope sent once its inbox was back", got)
	}
}

// TestStaleEntryOfANodeBackIsKept: an entry found on a dead node is removed
// only if the node is still dead when asked again after the entry was read:
// a node that came back meanwhile (its liveness key set again, its entries
// rewritten) keeps them.
func TestStaleEntryOfANodeBackIsKept(t *testing.T) {
	nodes, admin, prefix := startNodes(t, "n1")
	ctx := context.Background()
	key := prefix + "acct:dave"
	if err := admin.HSet(ctx, key, "n9|c1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Set(ctx, prefix+"alive:n9", "0", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	nodes["n1"].bus.dropStale([]staleEntry{{key: key, field: "n9|c1", node: "n9"}})
	if ok, _ := admin.HExists(ctx, key, "n9|c1").Result(); !ok {
		t.Fatal("the entry of a node that is alive again was removed")
	}
	if err := admin.Del(ctx, prefix+"alive:n9").Err(); err != nil {
		t.Fatal(err)
	}
	nodes["n1"].bus.dropStale([]staleEntry{{key: key, field: "n9|c1", node: "n9"}})
	if ok, _ := admin.HExists(ctx, key, "n9|c1").Result(); ok {
		t.Fatal("the entry of a node still dead was kept")
	}
}

// TestAnswerDoesNotMakeALostInbox: an answer to a node whose inbox was lost
// (Redis restarted without its data) is dropped, not added to a new stream
// without the node's consumer group, which the group made later would skip
// together with the envelopes added to it meanwhile.
func TestAnswerDoesNotMakeALostInbox(t *testing.T) {
	nodes, admin, prefix := startNodes(t, "n1")
	ctx := context.Background()
	key := prefix + "inbox:{gone}"
	err := nodes["n1"].bus.sendReplies(ctx, []outgoing{{to: "gone", env: Envelope{Kind: "outcome", Origin: "n1", Seq: 1, Results: "p"}}})
	if err != nil {
		t.Fatalf("answer to a lost inbox: %v; want it dropped without an error", err)
	}
	if n, _ := admin.Exists(ctx, key).Result(); n != 0 {
		t.Fatal("the answer made the lost inbox again, without its consumer group")
	}
}
