package presence_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
