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
	"sync/atomic"
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

	Presence         bool          // post presence events too (presence.go)
	PresenceDebounce time.Duration // a presence change is reported once it held this long
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
	if c.PresenceDebounce == 0 {
		c.PresenceDebounce = 5 * time.Second
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
	// failingSince is when this node's posts began failing (unix ms), 0
	// after a 2xx: chat_notify_failing_seconds, for an alert.
	failingSince atomic.Int64

	mu      sync.Mutex
	pending map[string]*batch // guarded by mu
	stopped bool              // guarded by mu: Stop was called
	ops     []op              // guarded by mu: outbox writes in order (writer.go)
	busy    bool              // guarded by mu: the writer holds ops taken off the list
	full    bool              // guarded by mu: ops reached maxOps (logged once until drained)
	opsIn   chan struct{}     // ops were added

	stream    Streamer // nil: no stream copy
	states    States   // the shared record of presence (presence.go); nil: presence off
	pmu       sync.Mutex
	changes   map[string]*presenceChange // guarded by pmu: changes waiting out the debounce
	pstopped  bool                       // guarded by pmu
	psettling sync.WaitGroup             // changes being settled
}

// batch is one account's event while it waits. Guarded by Notifier.mu.
type batch struct {
	id          string // the event id, also of its row in the outbox
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

// Deps are what a Notifier works with.
type Deps struct {
	Outbox   *Outbox
	Online   OnlineFunc
	States   States                // the presence record; required with Config.Presence
	Stream   Streamer              // nil: no stream copy of the events (notify.stream)
	Registry prometheus.Registerer // nil: the counters are not registered
	Log      zerolog.Logger
}

// New returns a notifier over d.Outbox.
func New(cfg Config, d Deps) (*Notifier, error) {
	cfg = cfg.withDefaults()
	if cfg.URL == "" || cfg.Secret == "" {
		return nil, fmt.Errorf("notify: url and secret are both required")
	}
	if cfg.Presence && d.States == nil {
		return nil, fmt.Errorf("notify: presence needs a record of the states")
	}
	reg := d.Registry
	n := &Notifier{
		cfg: cfg, out: d.Outbox, online: d.Online, states: d.States, stream: d.Stream, log: d.Log, now: time.Now,
		changes: make(map[string]*presenceChange),
		wake:    make(chan struct{}, 1),
		opsIn:   make(chan struct{}, 1),
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
	failing := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_notify_failing_seconds",
		Help: "How long this node's posts to notify.url have been failing (0 once the site answered 2xx).",
	}, func() float64 {
		return n.Failing().Seconds()
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{n.sent, n.dead, n.cancelled, failing} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("notify: register metrics: %w", err)
			}
		}
	}
	return n, nil
}

// takeover is how late a node may be in writing out an event it holds (a
// busy node, a slow database) before another node sends the row as it is,
// taking the node for dead.
const takeover = 5 * time.Second

// Stored notes a message stored for m.To because no connection took it. It
// runs under the hub's account lock, so it only takes mu (never held while
// calling out), queues the outbox write and starts a timer. The first message
// of an account's event makes its row at once (the writer batches the rows of
// many accounts in one INSERT): a node that dies before the event is due
// leaves it to the others.
func (n *Notifier) Stored(m offline.Message) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	b := n.pending[m.To]
	first := b == nil
	if first {
		id, err := newEventID()
		if err != nil {
			n.log.Error().Err(err).Str("account", m.To).Msg("notify: event lost")
			return
		}
		b = &batch{id: id, first: now}
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
	if first {
		n.addLocked(op{kind: opHold, account: m.To, ev: b.event(m.To), at: now,
			nextAt: now.Add(n.cfg.Grace + n.cfg.BatchWindow + takeover)})
	}
}

// Online cancels account's pending event: it connected here (and is a
// presence change with notify.presence). The row of an
// event another node holds for it goes too (the writer drops the account's
// rows not yet written out, in one DELETE with other accounts'). With no
// grace period only a local event is looked for: a DELETE per init would buy
// little then.
func (n *Notifier) Online(account string) {
	n.presenceChanged(account)
	n.mu.Lock()
	defer n.mu.Unlock()
	_, held := n.pending[account]
	delete(n.pending, account)
	if (held || n.cfg.Grace > 0) && !n.stopped {
		n.addLocked(op{kind: opCancel, account: account, at: n.now()})
	}
}

// Failing says how long this node's posts to notify.url have been failing
// (0 once the site answered 2xx).
func (n *Notifier) Failing() time.Duration {
	since := n.failingSince.Load()
	if since == 0 {
		return 0
	}
	return time.Duration(n.now().UnixMilli()-since) * time.Millisecond
}

// Stop drops the presence changes still in their debounce, writes the newest
// batch of each event still in its grace period into its row, which any node
// sends once due (unless the account connected), and returns how many there
// were.
func (n *Notifier) Stop() int {
	n.stopPresence()
	n.mu.Lock()
	n.stopped = true
	left := len(n.pending)
	for account, b := range n.pending {
		n.addLocked(op{kind: opRewrite, account: account, ev: b.event(account)})
	}
	clear(n.pending)
	n.mu.Unlock()
	n.flush(5 * time.Second)
	return left
}

// event is b as the site gets it. Caller holds mu.
func (b *batch) event(account string) Event {
	return Event{
		EventID: b.id, Type: "offline_messages", Account: account, Count: b.count,
		Senders: append([]string(nil), b.senders...), Groups: append([]string(nil), b.groups...),
		FirstAt: b.first.Unix(), LastAt: b.last.Unix(), Preview: b.preview,
	}
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
// the event's row gets its final batch and is due at once. The sender asks
// whether the account is connected anywhere before the first post (an init
// on another node may not have reached the row).
func (n *Notifier) due(account string, b *batch) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pending[account] != b {
		return // cancelled, or stopping
	}
	if wait := n.dueAt(b).Sub(n.now()); wait > 0 {
		time.AfterFunc(wait, func() { n.due(account, b) })
		return
	}
	delete(n.pending, account)
	n.addLocked(op{kind: opRelease, account: account, ev: b.event(account), at: n.now()})
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
