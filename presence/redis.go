package presence

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Redis keeps the account map in Redis:
//
//	<prefix>acct:<account>  hash   field "<node>|<conn id>" -> registration time (unix ms)
//	<prefix>node:<node>     set    accounts with a connection on that node
//
// Writes are queued and sent in pipelines by one goroutine, in the order they
// were made, so init and close never wait on a Redis round trip and a burst of
// connections costs few of them. Local delivery never reads Redis.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	node   string
	log    zerolog.Logger

	mu      sync.Mutex
	ops     []op
	queued  uint64
	applied uint64
	moved   chan struct{} // closed and replaced whenever applied grows
	closed  bool
	wake    chan struct{}
	done    chan struct{}

	observe func(time.Duration) // pipeline latency, for metrics; may be nil
}

// ObserveLatency reports each pipeline's latency to fn. Call it before use.
func (r *Redis) ObserveLatency(fn func(time.Duration)) { r.observe = fn }

type op struct {
	account, conn string
	add, last     bool
	at            int64
}

// maxOps bounds the queue while Redis is unreachable; beyond it the oldest
// operations are dropped (and the node re-registers once issue-5 recovery runs).
const maxOps = 1 << 20

// NewRedis starts the writer goroutine for node's entries.
func NewRedis(rdb redis.UniversalClient, prefix, node string, log zerolog.Logger) *Redis {
	r := &Redis{
		rdb: rdb, prefix: prefix, node: node, log: log,
		moved: make(chan struct{}),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	go r.run()
	return r
}

func (r *Redis) accountKey(account string) string { return r.prefix + "acct:" + account }
func (r *Redis) nodeKey() string                  { return r.prefix + "node:" + r.node }

// Register queues the entry for a newly bound connection.
func (r *Redis) Register(account, conn string) {
	r.push(op{account: account, conn: conn, add: true, at: time.Now().UnixMilli()})
}

// Unregister queues the removal of exactly that connection's entry; last says it
// was the account's last connection on this node.
func (r *Redis) Unregister(account, conn string, last bool) {
	r.push(op{account: account, conn: conn, last: last})
}

func (r *Redis) push(o op) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if len(r.ops) >= maxOps {
		r.ops = r.ops[1:]
		r.applied++
		r.log.Error().Int("queued", len(r.ops)).Msg("presence queue full: Redis unreachable too long; dropping oldest entry")
	}
	r.ops = append(r.ops, o)
	r.queued++
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Sync waits until every operation queued before the call reached Redis.
func (r *Redis) Sync(ctx context.Context) error {
	r.mu.Lock()
	target := r.queued
	for r.applied < target {
		ch := r.moved
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("presence: sync: %w", ctx.Err())
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
	return nil
}

// Lookup lists account's connections on every node.
func (r *Redis) Lookup(ctx context.Context, account string) ([]Entry, error) {
	fields, err := r.rdb.HKeys(ctx, r.accountKey(account)).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: lookup %q: %w", account, err)
	}
	out := make([]Entry, len(fields))
	for i, f := range fields {
		out[i] = parseField(f)
	}
	return out, nil
}

// ClearNode removes every entry a previous run of this node left behind. Call it
// at start-up, before the first connection.
func (r *Redis) ClearNode(ctx context.Context) error {
	accounts, err := r.rdb.SMembers(ctx, r.nodeKey()).Result()
	if err != nil {
		return fmt.Errorf("presence: clear node %s: %w", r.node, err)
	}
	mine := r.node + fieldSep
	for len(accounts) > 0 {
		chunk := accounts[:min(len(accounts), 500)]
		accounts = accounts[len(chunk):]
		pipe := r.rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, len(chunk))
		for i, a := range chunk {
			cmds[i] = pipe.HKeys(ctx, r.accountKey(a))
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return fmt.Errorf("presence: clear node %s: %w", r.node, err)
		}
		del := r.rdb.Pipeline()
		for i, a := range chunk {
			for _, f := range cmds[i].Val() {
				if strings.HasPrefix(f, mine) {
					del.HDel(ctx, r.accountKey(a), f)
				}
			}
			del.SRem(ctx, r.nodeKey(), a)
		}
		if _, err := del.Exec(ctx); err != nil {
			return fmt.Errorf("presence: clear node %s: %w", r.node, err)
		}
	}
	return nil
}

// Ping checks Redis is reachable.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("presence: ping: %w", err)
	}
	return nil
}

// Close sends what is queued (until ctx ends) and stops the writer. It does not
// close the client, which the caller owns.
func (r *Redis) Close(ctx context.Context) error {
	err := r.Sync(ctx)
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
	case <-ctx.Done():
	}
	return err
}

func (r *Redis) run() {
	defer close(r.done)
	backoff := 50 * time.Millisecond
	for {
		r.mu.Lock()
		n := min(len(r.ops), 1000)
		if n == 0 {
			closed := r.closed
			r.mu.Unlock()
			if closed {
				return
			}
			<-r.wake
			continue
		}
		batch := r.ops[:n:n]
		r.mu.Unlock()

		start := time.Now()
		err := r.apply(batch)
		if r.observe != nil {
			r.observe(time.Since(start))
		}
		if err != nil {
			r.log.Warn().Err(err).Int("ops", n).Dur("retry_in", backoff).Msg("presence write to Redis failed; retrying")
			time.Sleep(backoff)
			backoff = min(backoff*2, 5*time.Second)
			r.mu.Lock()
			stop := r.closed
			r.mu.Unlock()
			if stop {
				return
			}
			continue
		}
		backoff = 50 * time.Millisecond
		r.mu.Lock()
		r.ops = r.ops[n:]
		if len(r.ops) == 0 {
			r.ops = nil
		}
		r.applied += uint64(n)
		close(r.moved)
		r.moved = make(chan struct{})
		r.mu.Unlock()
	}
}

func (r *Redis) apply(batch []op) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pipe := r.rdb.Pipeline()
	for _, o := range batch {
		f := Entry{Node: r.node, Conn: o.conn}.field()
		if o.add {
			pipe.HSet(ctx, r.accountKey(o.account), f, strconv.FormatInt(o.at, 10))
			pipe.SAdd(ctx, r.nodeKey(), o.account)
			continue
		}
		pipe.HDel(ctx, r.accountKey(o.account), f)
		if o.last {
			pipe.SRem(ctx, r.nodeKey(), o.account)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("presence: apply %d ops: %w", len(batch), err)
	}
	return nil
}
