package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"chatserver/presence"
)

// Peers is this node's view of where its own accounts are connected on other
// nodes, so that a message to an account connected here costs no Redis round
// trip. It is kept right by the nodes' own account-map changes: every node
// publishes its entries' changes (presence.WithChanges), and when an account
// registers here, the map's entries for it at that moment seed the view. Only
// accounts connected here are kept, so the view costs memory only for the
// accounts that are connected on several nodes.
//
// When in doubt the view says so (Lookup's known is false) and the caller
// asks Redis: an account whose registration is not written yet, and every
// account after the change feed was interrupted, until the view is rebuilt.
type Peers struct {
	rdb     redis.UniversalClient
	prefix  string
	node    string
	log     zerolog.Logger
	isLocal func(account string) bool

	mu      sync.Mutex
	others  map[string]map[string]struct{} // local account -> "<node>|<conn>" elsewhere
	pending map[string]pendingSeed         // registered here, view not seeded yet
	gone    map[string]time.Time           // "<account>\x00<node>|<conn>" removed lately
	healthy bool                           // the feed ran without a gap since the last rebuild
}

type pendingSeed struct {
	n     int
	since time.Time
}

// goneFor is how long a removed entry is remembered, so a seed read before
// the removal and handled after it does not bring it back.
const goneFor = 10 * time.Second

// NewPeers makes the view for node; isLocal says whether an account has a
// connection on this node (the table's answer). Give it to the account map
// writer (presence.WithChanges) and to the bus (Options.Peers), and run it
// (Run).
func NewPeers(rdb redis.UniversalClient, prefix, node string, log zerolog.Logger, isLocal func(string) bool) *Peers {
	return &Peers{rdb: rdb, prefix: prefix, node: node, log: log, isLocal: isLocal,
		others: map[string]map[string]struct{}{}, pending: map[string]pendingSeed{}, gone: map[string]time.Time{}}
}

// Channel is where the nodes publish their account-map changes.
func (p *Peers) Channel() string { return p.prefix + "presence" }

// Registering notes that account is being registered here: until its
// registration is written (Seen), the view does not know it.
func (p *Peers) Registering(account string) {
	p.mu.Lock()
	ps := p.pending[account]
	ps.n++
	if ps.n == 1 {
		ps.since = time.Now()
	}
	p.pending[account] = ps
	p.mu.Unlock()
}

// Seen seeds the view of account from its entries in the map once its
// registration here is written.
func (p *Peers) Seen(account string, fields []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps, ok := p.pending[account]; ok {
		if ps.n <= 1 {
			delete(p.pending, account)
		} else {
			ps.n--
			p.pending[account] = ps
		}
	}
	p.seedLocked(account, fields)
}

func (p *Peers) seedLocked(account string, fields []string) {
	mine := p.node + "|"
	for _, f := range fields {
		if strings.HasPrefix(f, mine) {
			continue
		}
		if _, ok := p.gone[account+"\x00"+f]; ok {
			continue
		}
		s := p.others[account]
		if s == nil {
			s = make(map[string]struct{}, 1)
			p.others[account] = s
		}
		s[f] = struct{}{}
	}
}

// Left drops account from the view when its last connection here closed
// (unless it has registered here again meanwhile).
func (p *Peers) Left(account string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pending[account]; ok || p.isLocal(account) {
		return
	}
	delete(p.others, account)
}

// Lookup returns the other nodes account is connected on, and whether the
// view knows (false: ask Redis).
func (p *Peers) Lookup(account string) (nodes []string, known bool) {
	if !p.isLocal(account) {
		return nil, false // only accounts connected here are kept
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.healthy {
		return nil, false
	}
	if _, ok := p.pending[account]; ok {
		return nil, false
	}
	for f := range p.others[account] {
		n, _, _ := strings.Cut(f, "|")
		if !contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	return nodes, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// apply takes one node's published changes.
func (p *Peers) apply(c presence.ChangeBatch) {
	if c.Node == p.node {
		return
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range c.Add {
		account, f := a[0], c.Node+"|"+a[1]
		if !p.isLocal(account) {
			if _, ok := p.pending[account]; !ok {
				continue
			}
		}
		if _, ok := p.gone[account+"\x00"+f]; ok {
			continue
		}
		s := p.others[account]
		if s == nil {
			s = make(map[string]struct{}, 1)
			p.others[account] = s
		}
		s[f] = struct{}{}
	}
	for _, d := range c.Del {
		account, f := d[0], c.Node+"|"+d[1]
		if s := p.others[account]; s != nil {
			delete(s, f)
			if len(s) == 0 {
				delete(p.others, account)
			}
		}
		if _, ok := p.pending[account]; ok || p.isLocal(account) {
			p.gone[account+"\x00"+f] = now
		}
	}
}

// Run follows the change feed until ctx ends. The view is trusted only
// while the subscription runs: after a gap, every local account is seeded
// again from Redis (snapshot lists them) before it is trusted again.
func (p *Peers) Run(ctx context.Context, snapshot func() []string) {
	sub := p.rdb.Subscribe(ctx, p.Channel())
	defer sub.Close()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		// (Re)subscribed: confirm, then rebuild from the map.
		if _, err := sub.Receive(ctx); err != nil {
			p.setHealthy(false)
			sleepCtx(ctx, probeEvery)
			continue
		}
		if err := p.rebuild(ctx, snapshot()); err != nil {
			p.log.Warn().Err(err).Msg("cannot rebuild the view of accounts on other nodes; messages ask Redis meanwhile")
			sleepCtx(ctx, probeEvery)
			continue
		}
		p.follow(ctx, sub, tick)
	}
}

// follow applies changes until the subscription breaks.
func (p *Peers) follow(ctx context.Context, sub *redis.PubSub, tick *time.Ticker) {
	for ctx.Err() == nil {
		msg, err := sub.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			if isTimeout(err) && ctx.Err() == nil {
				p.sweep(ctx)
				continue
			}
			p.setHealthy(false)
			return
		}
		switch m := msg.(type) {
		case *redis.Message:
			var c presence.ChangeBatch
			if json.Unmarshal([]byte(m.Payload), &c) == nil {
				p.apply(c)
			}
		case *redis.Subscription:
			// resubscribed after a reconnect: changes were missed
			p.setHealthy(false)
			return
		}
		select {
		case <-tick.C:
			p.sweep(ctx)
		default:
		}
	}
}

func (p *Peers) setHealthy(v bool) {
	p.mu.Lock()
	p.healthy = v
	p.mu.Unlock()
}

// rebuild seeds the view of every local account from the map.
func (p *Peers) rebuild(ctx context.Context, accounts []string) error {
	fresh := map[string][]string{}
	for len(accounts) > 0 {
		chunk := accounts[:min(len(accounts), 1000)]
		accounts = accounts[len(chunk):]
		pipe := p.rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, len(chunk))
		for i, a := range chunk {
			cmds[i] = pipe.HKeys(ctx, p.prefix+"acct:"+a)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		for i, a := range chunk {
			fresh[a] = cmds[i].Val()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.others = map[string]map[string]struct{}{}
	for a, fields := range fresh {
		p.seedLocked(a, fields)
	}
	p.healthy = true
	return nil
}

// sweep forgets old removals, and seeds again the accounts whose
// registration was not seen in time (a write superseded by a rebuild of the
// map after a Redis outage never reports).
func (p *Peers) sweep(ctx context.Context) {
	now := time.Now()
	var stuck []string
	p.mu.Lock()
	for k, t := range p.gone {
		if now.Sub(t) > goneFor {
			delete(p.gone, k)
		}
	}
	for a, ps := range p.pending {
		if now.Sub(ps.since) > 5*time.Second {
			stuck = append(stuck, a)
		}
	}
	p.mu.Unlock()
	if len(stuck) == 0 {
		return
	}
	pipe := p.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(stuck))
	for i, a := range stuck {
		cmds[i] = pipe.HKeys(ctx, p.prefix+"acct:"+a)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, a := range stuck {
		delete(p.pending, a)
		p.seedLocked(a, cmds[i].Val())
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
