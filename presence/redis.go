package presence

import (
	"context"
	"encoding/json"
	"errors"
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

	// changes, if set, is told of this node's entries as they are written,
	// and of every account's entries elsewhere when it registers here (see
	// WithChanges).
	changes Changes

	// snapshot lists this node's live connections; after Redis was unreachable
	// the node's entries are rebuilt from it. nil: no resync.
	snapshot func() []Binding
	failing  bool // guarded by mu: a write failed, rebuild before going on
	// lastOK (guarded by mu) is the last time Redis answered a write or the
	// heartbeat; cutOff the lastOK before the current failure (zero: none).
	lastOK, cutOff time.Time
	// rejoin, if set, hears that the node is back after being cut off (see
	// WithRejoin).
	rejoin func(lastOK time.Time)
	// written (guarded by mu) counts the write pipelines Redis acknowledged
	// since the last rebuild; the liveness key holds the same count.
	written uint64
}

// Binding is an account and one of its connection ids on this node.
type Binding struct{ Account, Conn string }

// RedisOption gives NewRedis one of its optional collaborators.
type RedisOption func(*Redis)

// WithLatency reports each pipeline's latency to fn (metrics).
func WithLatency(fn func(time.Duration)) RedisOption {
	return func(r *Redis) { r.observe = fn }
}

// WithRejoin calls fn when the node's entries are about to be written again
// after Redis was unreachable or lost them, with the last moment Redis had
// answered before: meanwhile other nodes took the node's accounts for gone
// and stored what they sent them (handlers.Rejoin reads it again for the
// live connections). fn runs on the writer's goroutine before the entries are
// written; it must be quick.
func WithRejoin(fn func(lastOK time.Time)) RedisOption {
	return func(r *Redis) { r.rejoin = fn }
}

// Changes hears what the account map writer does, so another component can
// keep a view of where this node's accounts are connected elsewhere without
// asking Redis per message (cluster.Peers).
type Changes interface {
	// Channel is where every node publishes its entries' changes.
	Channel() string
	// Registering: account is being registered here (before its write).
	Registering(account string)
	// Left: account's last connection here is being unregistered.
	Left(account string)
	// Seen gives, after a registration of account here was written, every
	// entry ("<node>|<conn>") the account has in the map at that moment.
	Seen(account string, fields []string)
}

// WithChanges publishes this node's entry changes on c.Channel() (one message
// per written batch, see ChangeBatch) and tells c what an account's entries
// are once its registration here is written.
func WithChanges(c Changes) RedisOption {
	return func(r *Redis) { r.changes = c }
}

// ChangeBatch is one published batch of a node's entry changes.
type ChangeBatch struct {
	Node string      `json:"n"`
	Add  [][2]string `json:"a,omitempty"` // [account, conn id]
	Del  [][2]string `json:"d,omitempty"`
}

type op struct {
	account, conn string
	add, last     bool
	at            int64
}

// maxOps bounds the queue while Redis is unreachable; beyond it the oldest
// operations are dropped (and the node re-registers once issue-5 recovery runs).
const maxOps = 1 << 20

// NewRedis starts the writer goroutine for node's entries. snapshot, if not
// nil, lists the node's live connections: when Redis comes back after being
// unreachable (or was down at start, see Rebuild) the node's entries are
// rebuilt from it.
func NewRedis(rdb redis.UniversalClient, prefix, node string, log zerolog.Logger, snapshot func() []Binding, opts ...RedisOption) *Redis {
	r := &Redis{
		rdb: rdb, prefix: prefix, node: node, log: log, snapshot: snapshot,
		moved: make(chan struct{}),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	go r.run()
	return r
}

func (r *Redis) accountKey(account string) string { return r.prefix + "acct:" + account }
func (r *Redis) nodeKey() string                  { return r.prefix + "node:" + r.node }
func (r *Redis) aliveKey() string                 { return r.prefix + "alive:" + r.node }

// The node's liveness key says "this node is up and its entries are in the
// map". It is refreshed every aliveEvery and expires after aliveTTL. Finding it
// gone means Redis lost its data (a restart without persistence, a flush, a
// failover): the node's entries are rebuilt from its live connections.
//
// Its value is the number of write pipelines Redis acknowledged since the
// node's last rebuild: each pipeline sets it last, and Redis replicates a
// master's writes in order. The heartbeat finding a smaller number means Redis
// lost writes it had acknowledged (a failover to a replica that had not
// received them yet): the entries are rebuilt too. With a Redis Cluster this
// covers the writes on the liveness key's own shard.
const (
	aliveEvery = 2 * time.Second
	aliveTTL   = 6 * time.Second
)

// Register queues the entry for a newly bound connection.
func (r *Redis) Register(account, conn string) {
	if r.changes != nil {
		r.changes.Registering(account)
	}
	r.push(op{account: account, conn: conn, add: true, at: time.Now().UnixMilli()})
}

// Unregister queues the removal of exactly that connection's entry; last says it
// was the account's last connection on this node.
func (r *Redis) Unregister(account, conn string, last bool) {
	r.push(op{account: account, conn: conn, last: last})
	if last && r.changes != nil {
		r.changes.Left(account)
	}
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
//
// While Redis is known to be unreachable (a write, the heartbeat or a lookup
// failed, and the account map has not been rebuilt since) it fails at once
// with ErrUnreachable instead of waiting for a deadline per call.
func (r *Redis) Lookup(ctx context.Context, account string) ([]Entry, error) {
	r.mu.Lock()
	failing := r.failing
	r.mu.Unlock()
	if failing {
		return nil, ErrUnreachable
	}
	fields, err := r.rdb.HKeys(ctx, r.accountKey(account)).Result()
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			r.markFailing()
		}
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

// Close sends what is queued (until ctx ends) and stops the writer. It does not
// close the client, which the caller owns.
func (r *Redis) Close(ctx context.Context) error {
	r.mu.Lock()
	failing := r.failing
	r.mu.Unlock()
	// Waiting long for an unreachable Redis would only delay the shutdown: the
	// next start of this node clears whatever its entries are then.
	if !failing {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		failing = r.Sync(sctx) != nil
		cancel()
	}
	if failing {
		r.log.Warn().Msg("Redis unreachable at shutdown: this node's account map entries are cleared at its next start")
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	return nil
}

func (r *Redis) run() {
	defer close(r.done)
	tick := time.NewTicker(aliveEvery)
	defer tick.Stop()
	backoff := 50 * time.Millisecond
	for {
		r.mu.Lock()
		if r.failing && r.snapshot != nil {
			r.mu.Unlock()
			if err := r.resync(); err != nil {
				r.log.Warn().Err(err).Dur("retry_in", backoff).Msg("Redis still unreachable; local delivery goes on, the account map will be rebuilt")
				if r.sleep(backoff) {
					return
				}
				backoff = min(backoff*2, 5*time.Second)
			} else {
				backoff = 50 * time.Millisecond
			}
			continue
		}
		n := min(len(r.ops), 1000)
		if n == 0 {
			closed := r.closed
			r.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-r.wake:
			case <-tick.C:
				r.heartbeat()
			}
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
			r.markFailing()
			if r.sleep(backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
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
	r.mu.Lock()
	n := r.written + 1
	r.mu.Unlock()
	pipe := r.rdb.Pipeline()
	var seen []*redis.StringSliceCmd
	var change ChangeBatch
	for _, o := range batch {
		f := Entry{Node: r.node, Conn: o.conn}.field()
		if o.add {
			pipe.HSet(ctx, r.accountKey(o.account), f, strconv.FormatInt(o.at, 10))
			pipe.SAdd(ctx, r.nodeKey(), o.account)
			if r.changes != nil {
				seen = append(seen, pipe.HKeys(ctx, r.accountKey(o.account)))
				change.Add = append(change.Add, [2]string{o.account, o.conn})
			}
			continue
		}
		pipe.HDel(ctx, r.accountKey(o.account), f)
		if o.last {
			pipe.SRem(ctx, r.nodeKey(), o.account)
		}
		if r.changes != nil {
			change.Del = append(change.Del, [2]string{o.account, o.conn})
		}
	}
	if r.changes != nil {
		change.Node = r.node
		payload, err := json.Marshal(change)
		if err == nil {
			pipe.Publish(ctx, r.changes.Channel(), payload)
		}
	}
	r.countWrite(ctx, pipe, n)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("presence: apply %d ops: %w", len(batch), err)
	}
	i := 0
	for _, o := range batch {
		if o.add && r.changes != nil {
			r.changes.Seen(o.account, seen[i].Val())
			i++
		}
	}
	r.mu.Lock()
	r.written = n
	r.lastOK = time.Now()
	r.mu.Unlock()
	return nil
}

// countWrite ends pipe with setting the liveness key to n, the pipeline's
// number, if the key is there: a key gone is the heartbeat's to find, and the
// redis.Nil the pipeline then returns is no failure of its writes.
func (r *Redis) countWrite(ctx context.Context, pipe redis.Pipeliner, n uint64) {
	pipe.SetArgs(ctx, r.aliveKey(), strconv.FormatUint(n, 10), redis.SetArgs{Mode: "XX", KeepTTL: true})
}

// heartbeat refreshes the liveness key; if it is gone, or counts fewer write
// pipelines than Redis acknowledged, Redis lost some of the node's entries and
// they are rebuilt.
func (r *Redis) heartbeat() {
	if r.snapshot == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.mu.Lock()
	want := strconv.FormatUint(r.written, 10)
	r.mu.Unlock()
	got, err := r.rdb.SetArgs(ctx, r.aliveKey(), want, redis.SetArgs{Mode: "XX", TTL: aliveTTL, Get: true}).Result()
	switch {
	case err == nil && got == want:
		r.mu.Lock()
		r.lastOK = time.Now()
		r.mu.Unlock()
		return
	case err == nil:
		r.log.Warn().Str("writes_acknowledged", want).Str("writes_in_redis", got).
			Msg("Redis lost account map writes it had acknowledged (failed over to a replica that had not received them?): rebuilding this node's entries")
	case errors.Is(err, redis.Nil):
		r.log.Warn().Msg("this node's liveness key is gone from Redis (restarted or flushed?): rebuilding its entries")
	}
	r.markFailing()
}

// sleep waits d; it reports true if the writer was closed meanwhile.
func (r *Redis) sleep(d time.Duration) bool {
	time.Sleep(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Rebuild clears what earlier runs of this node left in the map and writes the
// live connections (none at start) and the liveness key. Call it at start,
// before the first connection; later rebuilds happen by themselves. When Redis
// does not answer, the map is marked stale: the writer rebuilds it as soon as
// Redis is back (and lookups fail at once meanwhile).
func (r *Redis) Rebuild() error {
	err := r.resync()
	if err != nil {
		r.mu.Lock()
		r.failing = true
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	return err
}

// resync rebuilds this node's entries after an outage: the queued operations are
// superseded by a snapshot of the live connections, so closes and opens missed
// while Redis was away cannot leave a stale entry or a missing one. Operations
// queued after the snapshot are applied after it, in order.
func (r *Redis) resync() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("presence: resync: %w", err)
	}
	r.mu.Lock()
	dropped := len(r.ops)
	r.applied += uint64(dropped)
	r.ops = nil
	cutOff := r.cutOff
	r.mu.Unlock()
	if r.rejoin != nil && !cutOff.IsZero() {
		r.rejoin(cutOff)
	}
	if err := r.ClearNode(ctx); err != nil {
		r.markFailing()
		return err
	}
	live := r.snapshot()
	now := time.Now().UnixMilli()
	if err := r.rdb.Set(ctx, r.aliveKey(), "0", aliveTTL).Err(); err != nil {
		r.markFailing()
		return fmt.Errorf("presence: resync: %w", err)
	}
	var written uint64
	for len(live) > 0 {
		chunk := live[:min(len(live), 1000)]
		live = live[len(chunk):]
		pipe := r.rdb.Pipeline()
		for _, e := range chunk {
			pipe.HSet(ctx, r.accountKey(e.Account), Entry{Node: r.node, Conn: e.Conn}.field(), strconv.FormatInt(now, 10))
			pipe.SAdd(ctx, r.nodeKey(), e.Account)
		}
		r.countWrite(ctx, pipe, written+1)
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			r.markFailing()
			return fmt.Errorf("presence: resync: %w", err)
		}
		written++
	}
	r.mu.Lock()
	r.written = written
	r.failing = false
	r.cutOff = time.Time{}
	r.lastOK = time.Now()
	close(r.moved)
	r.moved = make(chan struct{})
	r.mu.Unlock()
	r.log.Info().Int("superseded_ops", dropped).Msg("Redis reachable again: this node's account map entries rebuilt")
	return nil
}

// ErrUnreachable is Lookup's answer while Redis is known to be unreachable.
var ErrUnreachable = errors.New("presence: Redis unreachable")

func (r *Redis) markFailing() {
	r.mu.Lock()
	r.failing = true
	if r.cutOff.IsZero() {
		r.cutOff = r.lastOK
	}
	r.mu.Unlock()
}
