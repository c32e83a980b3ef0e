package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reply collects the outcomes of one received envelope's copies and sends
// them back to the sending node once every copy has one.
type Reply struct {
	b      *Bus
	origin string
	seq    uint64
	res    []byte
	left   atomic.Int32
	mu     sync.Mutex
	done   func([]Outcome) // NewReply's: hears the outcomes instead of a node
}

// NewReply collects the outcomes of an envelope of n copies that did not come
// through a Bus (a handover's successor link): done hears them once every
// copy has one. n must be at least 1.
func NewReply(n int, done func([]Outcome)) *Reply {
	r := &Reply{res: make([]byte, n), done: done}
	r.left.Store(int32(n))
	return r
}

// Report records the outcome of the copy for env.To[i]; the last one sends the
// answer. Each i is reported once.
func (r *Reply) Report(i int, o Outcome) {
	if r == nil {
		return
	}
	r.mu.Lock()
	if i >= 0 && i < len(r.res) {
		r.res[i] = byte(o)
	}
	r.mu.Unlock()
	if r.left.Add(-1) != 0 {
		return
	}
	if r.done != nil {
		r.mu.Lock()
		out := make([]Outcome, len(r.res))
		for i, b := range r.res {
			out[i] = Outcome(b)
		}
		r.mu.Unlock()
		r.done(out)
		return
	}
	r.mu.Lock()
	env := Envelope{Kind: "outcome", Origin: r.b.node, Seq: r.seq, Results: string(r.res)}
	r.mu.Unlock()
	r.b.replies.add(r.origin, env)
}

// outbox queues outcomes for runReplies, which sends them in pipelines.
type outbox struct {
	mu   sync.Mutex
	q    []outgoing
	wake chan struct{}
}

type outgoing struct {
	to  string
	env Envelope
}

func (o *outbox) init() { o.wake = make(chan struct{}, 1) }

func (o *outbox) add(to string, env Envelope) {
	o.mu.Lock()
	o.q = append(o.q, outgoing{to, env})
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) take(n int) []outgoing {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := min(n, len(o.q))
	out := o.q[:k:k]
	o.q = o.q[k:]
	if len(o.q) == 0 {
		o.q = nil
	}
	return out
}

// runReplies sends queued outcomes until ctx ends. One that cannot be sent is
// dropped after a few tries: its sender times out and stores the message,
// which the offline table keeps once per id.
func (b *Bus) runReplies(ctx context.Context) {
	for {
		batch := b.replies.take(256)
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-b.replies.wake:
			}
			continue
		}
		for try := 0; ; try++ {
			err := b.sendReplies(ctx, batch)
			if err == nil {
				break
			}
			if try == 2 || ctx.Err() != nil {
				b.log.Warn().Err(err).Int("outcomes", len(batch)).Msg("could not send outcomes to the sending nodes; they time out and store those messages")
				break
			}
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
}

func (b *Bus) sendReplies(ctx context.Context, batch []outgoing) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pipe := b.rdb.Pipeline()
	var cmds []*redis.StringCmd
	for _, o := range batch {
		payload, err := json.Marshal(o.env)
		if err != nil {
			continue
		}
		// NOMKSTREAM: a sending node's inbox lost with Redis's data is made
		// again by that node only, with its consumer group; an answer that
		// made it here would be skipped by the group made after it, and so
		// would every envelope added to it meanwhile. The answer is dropped
		// instead: its sender times out and stores the message.
		cmds = append(cmds, pipe.XAdd(rctx, &redis.XAddArgs{Stream: b.inbox(o.to), NoMkStream: true, MaxLen: inboxMaxLen, Approx: true, Values: []any{"e", payload}}))
	}
	if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}
