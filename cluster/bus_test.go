package cluster

import (
	"context"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"chatserver/internal/servicetest"
	"chatserver/presence"
)

// node is one bus running against the real Redis, with what it received.
type node struct {
	bus *Bus
	got chan Envelope
}

// startNodes runs a bus per name, each with a Redis client of its own, all
// under one key prefix; they stop when the test ends.
func startNodes(t *testing.T, names ...string) (map[string]*node, *redis.Client, string) {
	t.Helper()
	admin, prefix := servicetest.Redis(t)
	nodes := map[string]*node{}
	for _, name := range names {
		rdb := redis.NewClient(&redis.Options{Addr: servicetest.RedisAddr(t)})
		n := &node{bus: New(rdb, prefix, name, zerolog.New(zerolog.NewTestWriter(t))), got: make(chan Envelope, 100)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			n.bus.Run(ctx, func(e Envelope) { n.got <- e })
		}()
		t.Cleanup(func() {
			cancel()
			<-done
			_ = rdb.Close()
		})
		nodes[name] = n
	}
	// Run subscribes in the background: a node is ready once a send to it is
	// received (the probes are drained below).
	for name, n := range nodes {
		probe := Envelope{Kind: "msg", From: "probe", Content: "ready?"}
		deadline := time.Now().Add(5 * time.Second)
		for {
			ok, err := nodes[names[0]].bus.Send(context.Background(), name, probe)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s did not subscribe within 5 s", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if name != names[0] { // a node does not hear itself
			if e := n.next(t); e.From != "probe" {
				t.Fatalf("node %s: first envelope %+v; want the probe", name, e)
			}
		}
	}
	// Subscribed to its inbox means subscribed to the site-wide channel too
	// (one SUBSCRIBE for both).
	return nodes, admin, prefix
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

// TestSendReachesThatNodeOnly: an envelope sent to a node's inbox reaches that
// node's handler, whole and stamped with its origin, and no other node; a
// send to a node nobody listens for reports it was not received.
func TestSendReachesThatNodeOnly(t *testing.T) {
	nodes, _, _ := startNodes(t, "n1", "n2", "n3")
	ctx := context.Background()
	sent := Envelope{Kind: "msg", From: "alice", To: []string{"bob", "bea"}, Content: "hi", ID: "m1", AddTime: 42, Store: true}
	ok, err := nodes["n1"].bus.Send(ctx, "n2", sent)
	if err != nil || !ok {
		t.Fatalf("send to n2 = %v, %v; want received", ok, err)
	}
	want := sent
	want.Origin = "n1"
	if got := nodes["n2"].next(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("n2 got %+v; want %+v", got, want)
	}
	// A marker sent after it reaches n3 first: n3 never saw the envelope for n2.
	if _, err := nodes["n1"].bus.Send(ctx, "n3", Envelope{Kind: "msg", From: "marker"}); err != nil {
		t.Fatal(err)
	}
	if got := nodes["n3"].next(t); got.From != "marker" {
		t.Fatalf("n3 got %+v first; want the marker (the envelope was for n2)", got)
	}
	if ok, err := nodes["n1"].bus.Send(ctx, "n9", sent); err != nil || ok {
		t.Fatalf("send to a node nobody runs = %v, %v; want not received, no error", ok, err)
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
	// n2 answers n1 after it saw the broadcast: if n1 heard its own broadcast,
	// it would come before the answer.
	if _, err := nodes["n2"].bus.Send(ctx, "n1", Envelope{Kind: "msg", From: "marker"}); err != nil {
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

	b := New(admin, prefix, "n1", zerolog.New(zerolog.NewTestWriter(t)))
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
		if ok, err := admin.HExists(ctx, key, field).Result(); err != nil || ok {
			t.Fatalf("dead node's entry %s %s still there (%v, %v); want it removed", key, field, ok, err)
		}
	}
	for key, field := range map[string]string{aliceKey: "n2|c1", bobKey: "n1|c5"} {
		if ok, err := admin.HExists(ctx, key, field).Result(); err != nil || !ok {
			t.Fatalf("entry %s %s of a live node was removed (%v, %v)", key, field, ok, err)
		}
	}
}
