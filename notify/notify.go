// Package notify tells the site about messages stored for accounts with no
// live connection: a signed HTTP POST per account and batch, held back for a
// grace period (an account that connects in it gets none), kept in an outbox
// table until the site answers 2xx.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"chatserver/offline"
)

// Config is the notify section; a zero duration or count means the default,
// except Grace: 0 holds nothing back.
type Config struct {
	URL          string        // the site's receiver; empty: nothing is emitted
	Secret       string        // HMAC-SHA256 key of the signature
	Grace        time.Duration // an account that connects within this of the first stored message gets no event
	BatchWindow  time.Duration // messages this close together go in one event
	PreviewBytes int           // bytes of the newest content in the event; 0: none
	Table        string        // the outbox table
	RetryBase    time.Duration // first retry after a failed post; doubles each time
	MaxAttempts  int           // posts of one event before it is given up (dead-lettered)
	Node         string        // this node, recorded on the rows it claims
}

func (c Config) withDefaults() Config {
	if c.BatchWindow == 0 {
		c.BatchWindow = 2 * time.Second
	}
	if c.Table == "" {
		c.Table = "app_notify_outbox"
	}
	if c.RetryBase == 0 {
		c.RetryBase = time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 12
	}
	return c
}

// OnlineFunc says whether account is connected on any node (the handler's
// Online, which asks Redis with several nodes).
type OnlineFunc func(ctx context.Context, account string) (bool, error)

// Notifier collects the stored messages of each account into one pending
// event, and writes it to the outbox once due, unless the account connected.
type Notifier struct {
	cfg    Config
	out    *Outbox
	online OnlineFunc
	log    zerolog.Logger
	now    func() time.Time
	wake   chan struct{} // an event was added: the sender looks at once

	sent, dead, cancelled prometheus.Counter

	mu      sync.Mutex
	pending map[string]*batch // guarded by mu
	stopped bool              // guarded by mu: Stop was called
	// writing counts the events between leaving pending and the outbox, so
	// that Stop returns only once none is left to touch the database.
	writing sync.WaitGroup
}

// batch is one account's event while it waits. Guarded by Notifier.mu.
type batch struct {
	first, last time.Time
	count       int
	senders     []string // in the order they first wrote
	groups      []string
	preview     *Preview
}

// Preview is the newest stored message of an event.
type Preview struct {
	From    string `json:"from"`
	Group   string `json:"group,omitempty"`
	Content string `json:"content"`
}

// Event is the JSON body the site receives.
type Event struct {
	EventID string   `json:"event_id"`
	Type    string   `json:"type"` // "offline_messages"
	Account string   `json:"account"`
	Count   int      `json:"count"`
	Senders []string `json:"senders"`
	Groups  []string `json:"groups,omitempty"`
	FirstAt int64    `json:"first_at"` // unix seconds
	LastAt  int64    `json:"last_at"`
	Preview *Preview `json:"preview,omitempty"`
}

// New returns a notifier over out; reg (may be nil) gets its counters.
func New(cfg Config, out *Outbox, online OnlineFunc, reg prometheus.Registerer, log zerolog.Logger) (*Notifier, error) {
	cfg = cfg.withDefaults()
	if cfg.URL == "" || cfg.Secret == "" {
		return nil, fmt.Errorf("notify: url and secret are both required")
	}
	n := &Notifier{
		cfg: cfg, out: out, online: online, log: log, now: time.Now,
		wake:    make(chan struct{}, 1),
		pending: make(map[string]*batch),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_notify_sent_total", Help: "Notification events the site answered 2xx.",
		}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_notify_dead_total", Help: "Notification events given up after notify.max_attempts failed posts.",
		}),
		cancelled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_notify_cancelled_total", Help: "Pending notification events dropped because the account connected within notify.grace.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{n.sent, n.dead, n.cancelled} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("notify: register metrics: %w", err)
			}
		}
	}
	return n, nil
}

// Stored notes a message stored for m.To because no connection took it. It
// runs under the hub's account lock, so it only takes mu (never held while
// calling out) and starts a timer.
func (n *Notifier) Stored(m offline.Message) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	b := n.pending[m.To]
	if b == nil {
		b = &batch{first: now}
		n.pending[m.To] = b
		time.AfterFunc(n.cfg.Grace, func() { n.due(m.To, b) })
	}
	b.last = now
	b.count++
	b.senders = appendNew(b.senders, m.From)
	if m.Group != "" {
		b.groups = appendNew(b.groups, m.Group)
	}
	if n.cfg.PreviewBytes > 0 {
		b.preview = &Preview{From: m.From, Group: m.Group, Content: truncate(m.Content, n.cfg.PreviewBytes)}
	}
}

// Online cancels account's pending event: it connected here.
func (n *Notifier) Online(account string) {
	n.mu.Lock()
	_, ok := n.pending[account]
	delete(n.pending, account)
	n.mu.Unlock()
	if ok {
		n.cancelled.Inc()
	}
}

// Stop drops the events still in their grace period (they live in memory
// until then) and returns how many; the outbox keeps the rest for any node.
func (n *Notifier) Stop() int {
	n.mu.Lock()
	n.stopped = true
	dropped := len(n.pending)
	clear(n.pending)
	n.mu.Unlock()
	n.writing.Wait()
	return dropped
}

// dueAt is when b is written out: the grace period after its first message,
// and then no sooner than a batch window after its latest one (at most one
// window more, so that a steady stream still gets its event).
func (n *Notifier) dueAt(b *batch) time.Time {
	due := b.first.Add(n.cfg.Grace)
	if quiet := b.last.Add(n.cfg.BatchWindow); quiet.After(due) {
		due = quiet
		if limit := b.first.Add(n.cfg.Grace + n.cfg.BatchWindow); due.After(limit) {
			due = limit
		}
	}
	return due
}

// due runs when b's timer fires: again later if messages kept coming, else
// the event goes to the outbox unless the account is online on some node.
func (n *Notifier) due(account string, b *batch) {
	n.mu.Lock()
	if n.pending[account] != b {
		n.mu.Unlock() // cancelled
		return
	}
	if wait := n.dueAt(b).Sub(n.now()); wait > 0 {
		n.mu.Unlock()
		time.AfterFunc(wait, func() { n.due(account, b) })
		return
	}
	delete(n.pending, account)
	n.writing.Add(1)
	defer n.writing.Done()
	ev := Event{
		Type: "offline_messages", Account: account, Count: b.count,
		Senders: b.senders, Groups: b.groups, FirstAt: b.first.Unix(), LastAt: b.last.Unix(), Preview: b.preview,
	}
	n.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// An init on another node cannot reach this node's pending map: ask the
	// account map instead (Redis with several nodes).
	if on, err := n.online(ctx, account); err == nil && on {
		n.cancelled.Inc()
		return
	}
	if err := n.enqueue(ctx, ev); err != nil {
		n.log.Error().Err(err).Str("account", account).Int("count", ev.Count).Msg("notify: event lost")
	}
}

func (n *Notifier) enqueue(ctx context.Context, ev Event) error {
	id, err := newEventID()
	if err != nil {
		return err
	}
	ev.EventID = id
	body, err := encodeEvent(ev)
	if err != nil {
		return err
	}
	if err := n.out.Add(ctx, id, ev.Account, body, n.now()); err != nil {
		return err
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

func newEventID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("notify: event id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// truncate cuts s to at most max bytes without splitting a character.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
