package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Each node's inbox is one stream, <prefix>inbox:{<node>}: one key, so on a
// Redis Cluster it lives on one shard and its order is that shard's order.
// Senders XADD to it; the node reads it through the consumer group
// groupName as consumer <node>, and removes each entry (XACK, XDEL) once it
// has handed it over.

const (
	groupName = "nodes"
	// inboxMaxLen bounds an inbox whose node stopped reading (approximately:
	// Redis trims whole blocks). A trimmed envelope is taken as not taken by
	// its sender, which stores the message.
	inboxMaxLen = 100_000
	readBatch   = 512
	readBlock   = 2 * time.Second
)

// Outcome is what became of one recipient's copy on the node that received it.
type Outcome byte

const (
	// NotTaken: no answer (timeout) or the node could not take it; the sender
	// stores the copy itself.
	NotTaken Outcome = 0
	// Pushed: written to a live connection of the recipient there.
	Pushed Outcome = 'p'
	// Stored: committed to the offline table there.
	Stored Outcome = 's'
	// Gone: a copy without the storing duty found no connection there; the
	// copy with the duty answers for the message.
	Gone Outcome = 'g'
)

// wait is an envelope sent and not yet answered.
type wait struct {
	seq      uint64
	node     string
	entry    string // stream entry id, once XADD answered
	deadline time.Time
	n        int
	done     func([]Outcome)
}

// Send appends env to node's inbox. done is called once, from another
// goroutine, with the outcome of every account of env.To (in order): the
// receiving node's answer, or NotTaken for all when it does not come within
// the confirmation timeout (the entry is then taken back, so a node that
// wakes up late does not deliver it). On an error done is not called: the
// message did not leave, the caller stores it.
func (b *Bus) Send(ctx context.Context, node string, env Envelope, done func([]Outcome)) error {
	if err := b.check(); err != nil {
		return err
	}
	env.Origin = b.node
	env.Seq = b.seq.Add(1)
	env.Sent = time.Now().UnixMilli()
	payload, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("cluster: encode: %w", err)
	}
	w := &wait{seq: env.Seq, node: node, deadline: time.Now().Add(b.confirm), n: len(env.To), done: done}
	b.mu.Lock()
	b.waits[env.Seq] = w // before XADD: the answer can come before XADD returns
	b.mu.Unlock()
	// NOMKSTREAM: an inbox that is not there was lost (Redis restarted
	// without its data, or failed over to a replica that lacked it), with the
	// envelopes in it. Adding to a new stream would deliver this one ahead of
	// those, which time out and are stored: the caller stores it behind them.
	id, err := b.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: b.inbox(node), NoMkStream: true, MaxLen: inboxMaxLen, Approx: true, Values: []any{"e", payload},
	}).Result()
	if errors.Is(err, redis.Nil) {
		err = ErrInboxGone
	}
	b.mu.Lock()
	if err != nil {
		delete(b.waits, env.Seq)
	} else {
		w.entry = id
	}
	b.mu.Unlock()
	if errors.Is(err, ErrInboxGone) {
		return fmt.Errorf("cluster: send to %s: %w", node, err)
	}
	if err != nil {
		b.failed(err)
		return fmt.Errorf("cluster: send to %s: %w", node, err)
	}
	return nil
}

// ErrInboxGone: the node's inbox is not in Redis (lost with what was in it;
// the node makes it again when it next reads).
var ErrInboxGone = errors.New("cluster: the node's inbox is gone from Redis")

// runTimeouts answers the envelopes whose outcome did not come in time.
func (b *Bus) runTimeouts(ctx context.Context) {
	tick := time.NewTicker(b.confirm / 10)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			b.expire(ctx, now)
		}
	}
}

func (b *Bus) expire(ctx context.Context, now time.Time) {
	var late []*wait
	b.mu.Lock()
	for seq, w := range b.waits {
		if w.entry != "" && now.After(w.deadline) {
			late = append(late, w)
			delete(b.waits, seq)
		}
	}
	b.mu.Unlock()
	if len(late) == 0 {
		return
	}
	// In the order sent: the messages are stored in that order.
	sort.Slice(late, func(i, j int) bool { return late[i].seq < late[j].seq })
	// Take the entries back: one still in the stream is not delivered by a
	// node that reads it later (and the stream of a dead node empties).
	tctx, cancel := context.WithTimeout(ctx, time.Second)
	pipe := b.rdb.Pipeline()
	for _, w := range late {
		pipe.XDel(tctx, b.inbox(w.node), w.entry)
	}
	_, _ = pipe.Exec(tctx)
	cancel()
	nodes := map[string]int{}
	for _, w := range late {
		nodes[w.node]++
		b.markSuspect(w.node)
		w.done(make([]Outcome, w.n))
	}
	for n, k := range nodes {
		b.log.Warn().Str("peer", n).Int("envelopes", k).Dur("timeout", b.confirm).
			Msg("another node did not answer in time: its messages are stored here, and it is skipped until it answers its liveness again")
	}
}

// markSuspect skips node for the liveness key's lifetime: it either refreshes
// the key and is tried again, or the key expires and it is dead.
func (b *Bus) markSuspect(node string) {
	b.mu.Lock()
	b.suspect[node] = time.Now().Add(SuspectFor)
	b.mu.Unlock()
}

// SuspectFor is how long a node that did not answer is skipped.
const SuspectFor = 3 * time.Second

func (b *Bus) isSuspect(node string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.suspect[node]
	if ok && time.Now().After(until) {
		delete(b.suspect, node)
		return false
	}
	return ok
}

// resolve hands an outcome to the envelope's wait.
func (b *Bus) resolve(env Envelope) {
	b.mu.Lock()
	w := b.waits[env.Seq]
	delete(b.waits, env.Seq)
	delete(b.suspect, env.Origin) // it answers
	b.mu.Unlock()
	if w == nil {
		return // answered after its timeout: already stored here
	}
	out := make([]Outcome, w.n)
	for i := range out {
		if i < len(env.Results) {
			out[i] = Outcome(env.Results[i])
		}
	}
	w.done(out)
}

// Open makes this node's inbox and its consumer group if they are not there.
// Call it before the node serves: an envelope added before the group exists
// is not read (its sender times out and stores it). Run makes them too.
func (b *Bus) Open(ctx context.Context) error {
	err := b.rdb.XGroupCreateMkStream(ctx, b.inbox(b.node), groupName, "$").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("cluster: open inbox of %s: %w", b.node, err)
	}
	return nil
}

// runInbox reads this node's inbox until ctx ends. It first takes the
// entries an earlier run read and did not remove, then new ones.
func (b *Bus) runInbox(ctx context.Context, handle func(Envelope, *Reply)) {
	key := b.inbox(b.node)
	start := "0" // this consumer's pending entries first
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := b.check(); err != nil {
			sleepCtx(ctx, probeEvery)
			continue
		}
		res, err := b.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: groupName, Consumer: b.node, Streams: []string{key, start}, Count: readBatch, Block: readBlock,
		}).Result()
		switch {
		case err == nil:
			backoff = 50 * time.Millisecond
		case errors.Is(err, redis.Nil):
			continue
		case ctx.Err() != nil:
			return
		case strings.HasPrefix(err.Error(), "NOGROUP"):
			// A new stream, or Redis lost it (restart, failover): make it.
			if err := b.Open(ctx); err != nil {
				b.log.Warn().Err(err).Msg("retrying")
				sleepCtx(ctx, backoff)
			}
			continue
		default:
			b.failed(err)
			b.log.Warn().Err(err).Dur("retry_in", backoff).Msg("reading this node's inbox failed; retrying")
			sleepCtx(ctx, backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		var ids []string
		for _, s := range res {
			for _, m := range s.Messages {
				ids = append(ids, m.ID)
				b.take(ctx, m, handle)
			}
		}
		if start == "0" && len(ids) == 0 {
			start = ">" // the earlier run's entries are done
		}
		if len(ids) > 0 {
			b.remove(ctx, key, ids)
		}
	}
}

// take handles one inbox entry.
func (b *Bus) take(ctx context.Context, m redis.XMessage, handle func(Envelope, *Reply)) {
	raw, _ := m.Values["e"].(string)
	var env Envelope
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		b.log.Error().Err(err).Str("entry", m.ID).Msg("undecodable envelope in this node's inbox; dropped")
		return
	}
	if env.Kind == "outcome" {
		b.resolve(env)
		return
	}
	if b.late(ctx, env) {
		return
	}
	var r *Reply
	if env.Seq != 0 {
		r = &Reply{b: b, origin: env.Origin, seq: env.Seq, res: make([]byte, len(env.To))}
		r.left.Store(int32(len(env.To)))
	}
	handle(env, r)
}

// late reports an envelope to leave to its sender. One older than its
// sender's patience was (or is being) taken back and stored by the sender:
// delivering it too would only repeat it, unless the sender is gone, which
// leaves it to us. And once one is left, so is every later one from that
// sender that it may also time out (sent within a timeout of it): delivering
// those would put them ahead of the one the sender stores.
//
// A drain request is never left, and does not make later envelopes left: it
// carries no message, reading a backlog again is harmless whenever it comes,
// and the sender resends it while it fails. Leaving them let a sender that
// retried its requests to a node every second keep every envelope to that
// node left for as long as it went on, long after the node was back.
func (b *Bus) late(ctx context.Context, env Envelope) bool {
	if env.Seq == 0 || env.Kind == KindDrain {
		return false
	}
	age := time.Since(time.UnixMilli(env.Sent))
	b.mu.Lock()
	until, behind := b.leftUntil[env.Origin]
	b.mu.Unlock()
	if age <= b.confirm*3/4 && !(behind && env.Sent < until) {
		return false
	}
	if up, err := b.Alive(ctx, env.Origin); err == nil && !up {
		return false
	}
	b.mu.Lock()
	b.leftUntil[env.Origin] = max(until, env.Sent+b.confirm.Milliseconds())
	b.mu.Unlock()
	b.log.Warn().Str("origin", env.Origin).Dur("age", age).Str("id", env.ID).
		Msg("envelope read after its sender's timeout: left to the sender, which stores it")
	return true
}

// remove acknowledges and deletes handled entries.
func (b *Bus) remove(ctx context.Context, key string, ids []string) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pipe := b.rdb.Pipeline()
	pipe.XAck(rctx, key, groupName, ids...)
	pipe.XDel(rctx, key, ids...)
	if _, err := pipe.Exec(rctx); err != nil {
		// They stay pending for this consumer and are read again (as
		// pending) after a restart; their senders got their answers.
		b.log.Warn().Err(err).Int("entries", len(ids)).Msg("could not remove handled entries from this node's inbox")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
