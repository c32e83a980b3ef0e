// Package cluster carries messages between nodes through Redis.
//
// Messages for accounts connected on another node go into that node's inbox,
// a Redis Stream read through a consumer group; the receiving node hands each
// copy to its connections (or stores it) and sends the outcome of every copy
// back into the sending node's inbox: pushed, or stored once committed. A
// sender's ack waits for that outcome. When it does not come within the
// confirmation timeout (the receiving node is frozen, dead, or cut off), the
// sending node takes the entry back from the stream and stores the message
// itself; the receiving node skips entries it reads after that time. Nothing is
// acknowledged on a guess, and a message is never dropped on doubt: at worst it
// is stored as well as pushed, with the same id, which receivers drop.
//
// Site-wide announcements go through pub/sub (every node delivers them to its
// own connections; a node that misses one has no connection that could miss
// it later). The account map (presence) says where accounts are and the
// liveness keys which nodes are up. No home-made cluster protocol.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Envelope is one message between nodes.
// KindDrain is the kind of an envelope that only asks the node to read its
// accounts' backlog again (handlers' crossOrder).
const KindDrain = "drain"

type Envelope struct {
	Kind    string   `json:"k"`           // "msg", "group", "all", "drain", "outcome", "disconnect" or "read"
	Origin  string   `json:"o"`           // the sending node
	From    string   `json:"f,omitempty"` // sender account
	To      []string `json:"t,omitempty"` // recipient accounts on the target node
	Group   string   `json:"g,omitempty"`
	Content string   `json:"c,omitempty"`
	ID      string   `json:"i,omitempty"`
	AddTime int64    `json:"a,omitempty"`
	// Store: if the target node no longer has a connection for a recipient, it
	// stores the message offline (exactly one node is given this duty).
	Store bool `json:"s,omitempty"`
	// Seq numbers the envelopes a node sends (unique across its restarts); an
	// outcome carries the Seq it answers.
	Seq uint64 `json:"q,omitempty"`
	// Sent is the sending node's clock (unix ms) when it sent the envelope.
	Sent int64 `json:"n,omitempty"`
	// Results, in an outcome, has one Outcome per account of To.
	Results string `json:"r,omitempty"`
	// Drain lists accounts of To whose connections must read their backlog
	// again before this message is delivered to them (a message to them was
	// stored elsewhere; see handlers' crossOrder). Kind "drain" asks only that.
	Drain []string `json:"x,omitempty"`
	// Receivers, in a "read" order, are the accounts whose connections get
	// Content, a read receipt (kept out of To, which a node of an earlier
	// version would deliver to as a message).
	Receivers []string `json:"rv,omitempty"`
}

// Bus publishes to and receives from other nodes.
type Bus struct {
	rdb     redis.UniversalClient
	prefix  string
	node    string
	log     zerolog.Logger
	confirm time.Duration // see Options.ConfirmTimeout

	mu      sync.Mutex
	alive   map[string]aliveEntry // node -> liveness, cached briefly
	waits   map[uint64]*wait      // envelopes sent, by Seq, awaiting their outcome
	suspect map[string]time.Time  // node -> until when it is skipped (it did not answer)
	// leftUntil: origin -> its envelopes sent before then (unix ms) are left
	// to it (see late).
	leftUntil map[string]int64

	seq     atomic.Uint64
	replies outbox // outcomes to send back, in pipelines

	peers *Peers // nil: every Locate asks Redis

	brk     breaker       // see breaker.go
	stopped chan struct{} // closed when Run returns
}

type aliveEntry struct {
	up      bool
	checked time.Time
}

// aliveCache is how long a node's liveness answer is reused.
const aliveCache = time.Second

// Options are the bus's settings.
type Options struct {
	// ConfirmTimeout is how long a sending node waits for the outcome of an
	// envelope before it takes the envelope back and stores the message
	// itself. Default DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// Peers, if set, answers Locate for accounts connected here without a
	// Redis round trip (see Peers).
	Peers *Peers
}

// DefaultConfirmTimeout is Options.ConfirmTimeout's default: above a busy
// node's usual latency, well below a client's patience for an ack.
const DefaultConfirmTimeout = 2 * time.Second

// New makes a bus for node.
func New(rdb redis.UniversalClient, prefix, node string, log zerolog.Logger, opts Options) *Bus {
	if opts.ConfirmTimeout <= 0 {
		opts.ConfirmTimeout = DefaultConfirmTimeout
	}
	b := &Bus{
		rdb: rdb, prefix: prefix, node: node, log: log, confirm: opts.ConfirmTimeout, peers: opts.Peers,
		alive: make(map[string]aliveEntry), waits: make(map[uint64]*wait), suspect: make(map[string]time.Time), leftUntil: make(map[string]int64),
	}
	// Unique across restarts of this node: outcomes meant for an earlier run
	// find no wait.
	b.stopped = make(chan struct{})
	b.seq.Store(uint64(time.Now().UnixNano()))
	b.replies.init()
	return b
}

func (b *Bus) inbox(node string) string { return b.prefix + "inbox:{" + node + "}" }
func (b *Bus) allChannel() string       { return b.prefix + "all" }
func (b *Bus) controlChannel() string   { return b.prefix + "control" }

// Run receives until ctx ends: envelopes from other nodes' are handed to
// handle, one at a time and in the order received (which keeps each sender's
// order). reply is nil for announcements; for a message it collects the
// outcome of each recipient's copy and sends it back to the sending node.
// Run also sends the outcomes of this node's own copies and times out the
// envelopes it sent that were not answered.
func (b *Bus) Run(ctx context.Context, handle func(env Envelope, reply *Reply)) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); b.runAnnouncements(ctx, handle) }()
	go func() { defer wg.Done(); b.runReplies(ctx) }()
	go func() { defer wg.Done(); b.runTimeouts(ctx) }()
	b.runInbox(ctx, handle)
	wg.Wait()
	b.settleAll()
	close(b.stopped)
}

// settleAll answers, as not taken, every envelope still waiting when the bus
// stops: their messages are stored here (a copy the other node did push is
// then also stored, with the same id, which receivers drop).
func (b *Bus) settleAll() {
	b.mu.Lock()
	waits := b.waits
	b.waits = make(map[uint64]*wait)
	b.mu.Unlock()
	for _, w := range waits {
		w.done(make([]Outcome, w.n))
	}
}

// runAnnouncements delivers site-wide announcements and orders (Control)
// from other nodes.
func (b *Bus) runAnnouncements(ctx context.Context, handle func(Envelope, *Reply)) {
	sub := b.rdb.Subscribe(ctx, b.allChannel(), b.controlChannel())
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
				b.log.Error().Err(err).Str("channel", m.Channel).Msg("undecodable announcement from another node")
				continue
			}
			if env.Origin == b.node {
				continue // our own broadcast
			}
			handle(env, nil)
		}
	}
}

// Broadcast publishes env to every node (each delivers it to its connections).
func (b *Bus) Broadcast(ctx context.Context, env Envelope) error {
	return b.publish(ctx, b.allChannel(), "broadcast", env)
}

// Control publishes an order to every other node, for its own connections
// (kind "disconnect": close an account's connections). Like an announcement it
// reaches the nodes subscribed at that moment; a node cut off from Redis then
// does not hear it. It has a channel of its own: a node of an earlier version,
// which takes any kind it does not know on the announcement channel for a
// message, never sees it.
func (b *Bus) Control(ctx context.Context, env Envelope) error {
	return b.publish(ctx, b.controlChannel(), "control", env)
}

func (b *Bus) publish(ctx context.Context, channel, what string, env Envelope) error {
	if err := b.check(); err != nil {
		return err
	}
	env.Origin = b.node
	payload, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("cluster: encode: %w", err)
	}
	if err := b.rdb.Publish(ctx, channel, payload).Err(); err != nil {
		b.failed(err)
		return fmt.Errorf("cluster: %s: %w", what, err)
	}
	return nil
}

// Locate returns, for each account, the other live nodes it has a connection
// on, in one pipeline. Entries of nodes whose liveness key has expired are
// ignored and removed; a node that just failed to answer an envelope is
// skipped for a while (see markSuspect).
func (b *Bus) Locate(ctx context.Context, accounts []string) (map[string][]string, error) {
	return b.locate(ctx, accounts, true)
}

// Where returns the live nodes other than this one that account is connected
// on, including nodes skipped for not answering lately.
func (b *Bus) Where(ctx context.Context, account string) ([]string, error) {
	m, err := b.locate(ctx, []string{account}, false)
	return m[account], err
}

func (b *Bus) locate(ctx context.Context, accounts []string, skipSuspect bool) (map[string][]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	out := make(map[string][]string)
	ask := accounts
	if b.peers != nil {
		// Accounts connected here: the view knows where else they are.
		ask = nil
		for _, a := range accounts {
			nodes, known := b.peers.Lookup(a)
			if !known {
				ask = append(ask, a)
				continue
			}
			for _, n := range nodes {
				up, err := b.isAlive(ctx, n)
				if err != nil {
					return nil, err
				}
				if up && !(skipSuspect && b.isSuspect(n)) {
					out[a] = append(out[a], n)
				}
			}
		}
		if len(ask) == 0 {
			return out, nil
		}
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(ask))
	for i, a := range ask {
		cmds[i] = pipe.HKeys(ctx, b.prefix+"acct:"+a)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		b.failed(err)
		return nil, fmt.Errorf("cluster: locate: %w", err)
	}
	var stale []staleEntry
	for i, a := range ask {
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
				stale = append(stale, staleEntry{key: b.prefix + "acct:" + a, field: f, node: node})
				continue
			}
			if skipSuspect && b.isSuspect(node) {
				continue
			}
			seen[node] = true
			out[a] = append(out[a], node)
		}
	}
	if len(stale) > 0 {
		go b.dropStale(stale)
	}
	return out, nil
}

// Alive reports whether node's liveness key is there (cached for a second).
func (b *Bus) Alive(ctx context.Context, node string) (bool, error) {
	if node == b.node {
		return true, nil
	}
	return b.isAlive(ctx, node)
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
