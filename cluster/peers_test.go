package cluster

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"chatserver/internal/faultproxy"
	"chatserver/internal/servicetest"
	"chatserver/presence"
)

// localSet is a node's table, as far as the view asks it.
type localSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (l *localSet) has(a string) bool { l.mu.Lock(); defer l.mu.Unlock(); return l.m[a] }
func (l *localSet) set(a string, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[a] = on
}

// peerNode is a node's account-map writer with its view of the others.
type peerNode struct {
	local *localSet
	peers *Peers
	pres  *presence.Redis
}

func startPeerNode(t *testing.T, rdb redis.UniversalClient, prefix, name string) *peerNode {
	t.Helper()
	n := &peerNode{local: &localSet{m: map[string]bool{}}}
	n.peers = NewPeers(rdb, prefix, name, zerolog.Nop(), n.local.has)
	n.pres = presence.NewRedis(rdb, prefix, name, zerolog.Nop(), func() []presence.Binding { return nil }, presence.WithChanges(n.peers))
	if err := n.pres.Rebuild(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.peers.Run(ctx, func() []string { return nil })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = n.pres.Close(context.Background())
	})
	servicetest.Eventually(t, 5*time.Second, name+"'s view ready", func() bool {
		n.peers.mu.Lock()
		defer n.peers.mu.Unlock()
		return n.peers.healthy
	})
	return n
}

func (n *peerNode) connect(account, conn string) {
	n.local.set(account, true)
	n.pres.Register(account, conn)
}

func (n *peerNode) disconnect(account, conn string) {
	n.local.set(account, false)
	n.pres.Unregister(account, conn, true)
}

func (n *peerNode) lookup(account string) ([]string, bool) { return n.peers.Lookup(account) }

// TestPeersFollowEachOthersChanges: each node's view of where its accounts
// are connected elsewhere follows the other nodes' registrations and
// removals, whichever registered first; it does not claim to know accounts
// not connected here, nor an account whose registration is not written yet.
func TestPeersFollowEachOthersChanges(t *testing.T) {
	rdb, prefix := servicetest.Redis(t)
	n1 := startPeerNode(t, rdb, prefix, "n1")
	n2 := startPeerNode(t, rdb, prefix, "n2")
	ctx := context.Background()

	if _, known := n1.lookup("alice"); known {
		t.Fatal("n1 claims to know where alice is, and she is not connected there")
	}
	n1.connect("alice", "c1")
	if err := n1.pres.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if nodes, known := n1.lookup("alice"); !known || len(nodes) != 0 {
		t.Fatalf("n1's view of alice = %v, %v; want known, nowhere else", nodes, known)
	}
	n2.connect("alice", "c2") // n2 registers second: its seed sees n1
	servicetest.Eventually(t, 5*time.Second, "n1 learns alice is on n2 too", func() bool {
		nodes, known := n1.lookup("alice")
		return known && reflect.DeepEqual(nodes, []string{"n2"})
	})
	servicetest.Eventually(t, 5*time.Second, "n2 knows alice is on n1 too", func() bool {
		nodes, known := n2.lookup("alice")
		return known && reflect.DeepEqual(nodes, []string{"n1"})
	})
	n2.disconnect("alice", "c2")
	servicetest.Eventually(t, 5*time.Second, "n1 learns alice left n2", func() bool {
		nodes, known := n1.lookup("alice")
		return known && len(nodes) == 0
	})
}

// TestLocateFromTheViewAsksRedisNothing: a message to an account connected
// only here is located without a Redis round trip: with Redis black-holed,
// Locate still answers at once from the view. An account not here is asked
// of Redis (and fails on the hanging Redis).
func TestLocateFromTheViewAsksRedisNothing(t *testing.T) {
	admin, prefix := servicetest.Redis(t)
	n1 := startPeerNode(t, admin, prefix, "n1")
	n1.connect("alice", "c1")
	if err := n1.pres.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	rdb, proxy, _ := servicetest.RedisThroughProxy(t)
	b := New(rdb, prefix, "n1", zerolog.Nop(), Options{Peers: n1.peers})
	proxy.Set(faultproxy.Blackhole, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	where, err := b.Locate(ctx, []string{"alice"})
	if err != nil || len(where) != 0 {
		t.Fatalf("Locate(alice, connected only here) with Redis hanging = %v, %v; want nowhere else, no error", where, err)
	}
	if _, err := b.Locate(ctx, []string{"bob"}); err == nil {
		t.Fatal("Locate(bob, not here) answered with Redis hanging: it did not ask Redis")
	}
}
