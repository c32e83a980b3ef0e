package presence_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"chatserver/internal/faultproxy"
	"chatserver/internal/servicetest"
	"chatserver/presence"
)

// TestLookupFailsFastWhileRedisHangs: once a lookup found Redis not answering,
// the next ones fail at once instead of each waiting for its deadline (the
// online flag runs on a connection's handler), and lookups work again once
// Redis answers and the account map is rebuilt.
func TestLookupFailsFastWhileRedisHangs(t *testing.T) {
	rdb, proxy, prefix := servicetest.RedisThroughProxy(t)
	r := presence.NewRedis(rdb, prefix, "n1", zerolog.Nop(), func() []presence.Binding { return nil })
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	if err := r.Rebuild(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.Lookup(ctx, "alice"); err != nil {
		t.Fatalf("lookup with Redis up: %v", err)
	}
	proxy.Set(faultproxy.Blackhole, 0)
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := r.Lookup(cctx, "alice")
	cancel()
	if err == nil {
		t.Fatal("lookup with Redis black-holed succeeded")
	}
	start := time.Now()
	for i := 0; i < 10; i++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := r.Lookup(cctx, "alice")
		cancel()
		if !errors.Is(err, presence.ErrUnreachable) {
			t.Fatalf("lookup %d: %v; want ErrUnreachable at once", i, err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("10 lookups while Redis hangs took %v", d)
	}
	proxy.Set(faultproxy.Pass, 0)
	servicetest.Eventually(t, 15*time.Second, "lookups to work again after Redis came back", func() bool {
		_, err := r.Lookup(ctx, "alice")
		return err == nil
	})
}

// TestRebuildAtStartWithRedisDown: a node whose Redis does not answer at start
// serves lookups as unreachable at once, and writes its entries and liveness
// key by itself once Redis answers, with no call from the caller. Every
// pipeline's latency goes to the WithLatency function.
func TestRebuildAtStartWithRedisDown(t *testing.T) {
	rdb, proxy, prefix := servicetest.RedisThroughProxy(t)
	direct, _ := servicetest.Redis(t)
	proxy.Set(faultproxy.Cut, 0)
	var pipelines atomic.Int64
	r := presence.NewRedis(rdb, prefix, "n1", zerolog.Nop(),
		func() []presence.Binding { return []presence.Binding{{Account: "alice", Conn: "c1"}} },
		presence.WithLatency(func(time.Duration) { pipelines.Add(1) }))
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	if err := r.Rebuild(); err == nil {
		t.Fatal("Rebuild with Redis cut succeeded")
	}
	ctx := context.Background()
	if _, err := r.Lookup(ctx, "alice"); !errors.Is(err, presence.ErrUnreachable) {
		t.Fatalf("lookup after a failed start: %v; want ErrUnreachable", err)
	}
	proxy.Set(faultproxy.Pass, 0)
	servicetest.Eventually(t, 15*time.Second, "the entries written once Redis answers", func() bool {
		es, err := r.Lookup(ctx, "alice")
		return err == nil && len(es) == 1 && es[0].Conn == "c1"
	})
	if n, _ := direct.Exists(ctx, prefix+"alive:n1").Result(); n != 1 {
		t.Fatal("no liveness key after the rebuild")
	}
	r.Register("bob", "c2")
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if pipelines.Load() == 0 {
		t.Fatal("a pipeline ran and the latency function was not called")
	}
}

// TestRebuildAfterLostWrites: when Redis loses writes it had acknowledged but
// keeps the liveness key (a failover to a replica that had not received the
// last ones), the node notices at its next heartbeat and writes its entries
// again.
func TestRebuildAfterLostWrites(t *testing.T) {
	rdb, prefix := servicetest.Redis(t)
	var live atomic.Pointer[[]presence.Binding]
	live.Store(&[]presence.Binding{})
	r := presence.NewRedis(rdb, prefix, "n1", zerolog.New(zerolog.NewTestWriter(t)),
		func() []presence.Binding { return *live.Load() })
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	if err := r.Rebuild(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, err := rdb.Get(ctx, prefix+"alive:n1").Result()
	if err != nil {
		t.Fatal(err)
	}
	live.Store(&[]presence.Binding{{Account: "alice", Conn: "c1"}})
	r.Register("alice", "c1")
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if es, err := r.Lookup(ctx, "alice"); err != nil || len(es) != 1 {
		t.Fatalf("alice registered: %v, %v", es, err)
	}
	// What a replica one pipeline behind holds: alice's entry was never there,
	// the liveness key is as it was before.
	pipe := rdb.TxPipeline()
	pipe.HDel(ctx, prefix+"acct:alice", "n1|c1")
	pipe.SRem(ctx, prefix+"node:n1", "alice")
	pipe.SetArgs(ctx, prefix+"alive:n1", before, redis.SetArgs{KeepTTL: true})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 15*time.Second, "alice's entry written again", func() bool {
		es, err := r.Lookup(ctx, "alice")
		return err == nil && len(es) == 1 && es[0].Node == "n1" && es[0].Conn == "c1"
	})
}
