// Package cluster carries messages between nodes through Redis: each node
// subscribes to its own inbox channel and to the site-wide channel, and a node
// sending to an account connected elsewhere publishes once per target node. No
// home-made cluster protocol: the account map (presence) says where accounts
// are, the liveness keys say which nodes are up, pub/sub carries the frames.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Envelope is one message between nodes.
type Envelope struct {
	Kind    string   `json:"k"`           // "msg", "group" or "all"
	Origin  string   `json:"o"`           // the sending node
	From    string   `json:"f"`           // sender account
	To      []string `json:"t,omitempty"` // recipient accounts on the target node
	Group   string   `json:"g,omitempty"`
	Content string   `json:"c"`
	ID      string   `json:"i,omitempty"`
	AddTime int64    `json:"a,omitempty"`
	// Store: if the target node no longer has a connection for a recipient, it
	// stores the message offline (exactly one node is given this duty).
	Store bool `json:"s,omitempty"`
}

// Bus publishes to and receives from other nodes.
type Bus struct {
	rdb    redis.UniversalClient
	prefix string
	node   string
	log    zerolog.Logger

	mu    sync.Mutex
	alive map[string]aliveEntry // node -> liveness, cached briefly

	brk breaker // see breaker.go
}

type aliveEntry struct {
	up      bool
	checked time.Time
}

// aliveCache is how long a node's liveness answer is reused.
const aliveCache = time.Second

// New makes a bus for node.
func New(rdb redis.UniversalClient, prefix, node string, log zerolog.Logger) *Bus {
	return &Bus{rdb: rdb, prefix: prefix, node: node, log: log, alive: make(map[string]aliveEntry)}
}

func (b *Bus) inbox(node string) string { return b.prefix + "inbox:" + node }
func (b *Bus) allChannel() string       { return b.prefix + "all" }

// Run subscribes and calls handle for every envelope from another node, one at
// a time and in the order received (which keeps each sender's order), until
// ctx ends. It resubscribes after Redis comes back.
func (b *Bus) Run(ctx context.Context, handle func(Envelope)) {
	sub := b.rdb.Subscribe(ctx, b.inbox(b.node), b.allChannel())
	defer sub.Close()
	ch := sub.Channel(redis.WithChannelHealthCheckInterval(5 * time.Second))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			var env Envelope
			if err := json.Unmarshal([]byte(m.Payload), &env); err != nil {
				b.log.Error().Err(err).Str("channel", m.Channel).Msg("undecodable message from another node")
				continue
			}
			if env.Origin == b.node {
				continue // our own broadcast
			}
			handle(env)
		}
	}
}

// Send publishes env to node's inbox; it reports whether the node received it.
func (b *Bus) Send(ctx context.Context, node string, env Envelope) (bool, error) {
	if err := b.check(); err != nil {
		return false, err
	}
	env.Origin = b.node
	payload, err := json.Marshal(env)
	if err != nil {
		return false, fmt.Errorf("cluster: encode: %w", err)
	}
	n, err := b.rdb.Publish(ctx, b.inbox(node), payload).Result()
	if err != nil {
		b.failed(err)
		return false, fmt.Errorf("cluster: publish to %s: %w", node, err)
	}
	return n > 0, nil
}

// Broadcast publishes env to every node (each delivers it to its connections).
func (b *Bus) Broadcast(ctx context.Context, env Envelope) error {
	if err := b.check(); err != nil {
		return err
	}
	env.Origin = b.node
	payload, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("cluster: encode: %w", err)
	}
	if err := b.rdb.Publish(ctx, b.allChannel(), payload).Err(); err != nil {
		b.failed(err)
		return fmt.Errorf("cluster: broadcast: %w", err)
	}
	return nil
}

// Locate returns, for each account, the other live nodes it has a connection
// on, in one pipeline. Entries of nodes whose liveness key has expired are
// ignored and removed.
func (b *Bus) Locate(ctx context.Context, accounts []string) (map[string][]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(accounts))
	for i, a := range accounts {
		cmds[i] = pipe.HKeys(ctx, b.prefix+"acct:"+a)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		b.failed(err)
		return nil, fmt.Errorf("cluster: locate: %w", err)
	}
	out := make(map[string][]string)
	var stale []struct{ key, field string }
	for i, a := range accounts {
		seen := map[string]bool{}
		for _, f := range cmds[i].Val() {
			node, _, _ := strings.Cut(f, "|")
			if node == b.node || seen[node] {
				continue
			}
			up, err := b.isAlive(ctx, node)
			if err != nil {
				return nil, err
			}
			if !up {
				stale = append(stale, struct{ key, field string }{b.prefix + "acct:" + a, f})
				continue
			}
			seen[node] = true
			out[a] = append(out[a], node)
		}
	}
	if len(stale) > 0 {
		pipe := b.rdb.Pipeline()
		for _, s := range stale {
			pipe.HDel(ctx, s.key, s.field)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.log.Warn().Err(err).Int("entries", len(stale)).Msg("could not remove entries of dead nodes")
		}
	}
	return out, nil
}

func (b *Bus) isAlive(ctx context.Context, node string) (bool, error) {
	b.mu.Lock()
	e, ok := b.alive[node]
	b.mu.Unlock()
	if ok && time.Since(e.checked) < aliveCache {
		return e.up, nil
	}
	n, err := b.rdb.Exists(ctx, b.prefix+"alive:"+node).Result()
	if err != nil {
		b.failed(err)
		return false, fmt.Errorf("cluster: liveness of %s: %w", node, err)
	}
	b.mu.Lock()
	b.alive[node] = aliveEntry{up: n > 0, checked: time.Now()}
	b.mu.Unlock()
	return n > 0, nil
}
