package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/internal/faultproxy"
	"chatserver/internal/servicetest"
)

// TestRoutingPausesWhileRedisHangs: with Redis black-holed, the first routing
// call fails at its deadline and the next ones fail at once (a sender is not
// held up a round trip per message); once Redis answers, routing resumes.
func TestRoutingPausesWhileRedisHangs(t *testing.T) {
	rdb, proxy, prefix := servicetest.RedisThroughProxy(t)
	b := New(rdb, prefix, "n1", zerolog.Nop(), Options{})

	ctx := context.Background()
	if _, err := b.Locate(ctx, []string{"alice"}); err != nil {
		t.Fatalf("locate with Redis up: %v", err)
	}
	proxy.Set(faultproxy.Blackhole, 0)
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := b.Locate(cctx, []string{"alice"})
	cancel()
	if err == nil {
		t.Fatal("locate with Redis black-holed succeeded")
	}
	start := time.Now()
	for i := 0; i < 10; i++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := b.Locate(cctx, []string{"alice"})
		cancel()
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("locate %d while paused: %v; want ErrUnavailable", i, err)
		}
		if err := b.Send(ctx, "n2", Envelope{Kind: "msg"}, func([]Outcome) { t.Error("outcome of a send that failed") }); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("send while paused: %v; want ErrUnavailable", err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("20 routing calls while paused took %v; want them refused at once", d)
	}
	proxy.Set(faultproxy.Pass, 0)
	servicetest.Eventually(t, 10*time.Second, "routing to resume after Redis came back", func() bool {
		_, err := b.Locate(ctx, []string{"alice"})
		return err == nil
	})
}
