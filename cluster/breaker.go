package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// ErrUnavailable is returned at once while Redis is known to be unreachable:
// a message is not held up for a round trip that will time out. The caller
// falls back to what one node can do (deliver here, store the rest).
var ErrUnavailable = errors.New("cluster: Redis unreachable; routing to other nodes paused")

// probeEvery is how often a paused bus tries Redis again.
const probeEvery = 500 * time.Millisecond

// breaker pauses routing through Redis after a failure, until a probe answers.
type breaker struct {
	down    atomic.Bool
	probing atomic.Bool
}

// check returns ErrUnavailable while routing is paused.
func (b *Bus) check() error {
	if b.brk.down.Load() {
		return ErrUnavailable
	}
	return nil
}

// failed pauses routing after err (not for a caller's own cancellation) and
// starts the probe that resumes it.
func (b *Bus) failed(err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	if b.brk.down.CompareAndSwap(false, true) {
		b.log.Warn().Err(err).Msg("Redis unreachable: routing to other nodes paused; messages for accounts not connected here are stored")
	}
	if b.brk.probing.CompareAndSwap(false, true) {
		go b.probe()
	}
}

func (b *Bus) probe() {
	defer b.brk.probing.Store(false)
	for {
		select {
		case <-time.After(probeEvery):
		case <-b.stopped:
			return // the bus is closed: nothing to resume
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := b.rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			b.brk.down.Store(false)
			b.log.Info().Msg("Redis reachable again: routing to other nodes resumed")
			return
		}
	}
}
