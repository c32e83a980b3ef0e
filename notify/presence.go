package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence events (notify.presence): an account went online or offline
// across all nodes. A node sees its own connections come and go; once a
// change held notify.presence_debounce, it asks the account map whether the
// account is connected anywhere and swaps that state into a shared record
// (Redis, or this node's memory when it is alone): only the node that changes
// the record posts the event, so two nodes that both saw the account leave
// send one event, and a quick reconnect, seen by the record as no change,
// sends none.

// PresenceEvent is the JSON body of a presence event.
type PresenceEvent struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"` // "presence"
	Account string `json:"account"`
	State   string `json:"state"` // "online" or "offline"
	At      int64  `json:"at"`    // unix seconds of the change: for offline, when last seen
}

// States keeps the reported state of each account ("online"; no record is
// offline). Swap records state and returns what was recorded before.
type States interface {
	Swap(ctx context.Context, account string, online bool) (wasOnline bool, err error)
}

// MemoryStates is States for a node alone.
type MemoryStates struct {
	mu     sync.Mutex
	online map[string]bool // guarded by mu
}

// NewMemoryStates returns an empty record.
func NewMemoryStates() *MemoryStates { return &MemoryStates{online: make(map[string]bool)} }

// Swap implements States.
func (m *MemoryStates) Swap(_ context.Context, account string, online bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.online[account]
	if online {
		m.online[account] = true
	} else {
		delete(m.online, account)
	}
	return was, nil
}

// RedisStates is States shared by the nodes: a key per account online,
// <prefix>presence:<account>, set with SET ... GET and removed with GETDEL,
// so that of two nodes swapping at once one sees the change.
type RedisStates struct {
	rdb    redis.UniversalClient
	prefix string
}

// presenceTTL bounds a key that no node removes (its nodes died with the
// account connected): the next change after it reads as new.
const presenceTTL = 7 * 24 * time.Hour

// NewRedisStates keeps the record in rdb under prefix.
func NewRedisStates(rdb redis.UniversalClient, prefix string) *RedisStates {
	return &RedisStates{rdb: rdb, prefix: prefix}
}

// Swap implements States.
func (r *RedisStates) Swap(ctx context.Context, account string, online bool) (bool, error) {
	key := r.prefix + "presence:" + account
	var err error
	if online {
		err = r.rdb.SetArgs(ctx, key, "1", redis.SetArgs{Get: true, TTL: presenceTTL}).Err()
	} else {
		err = r.rdb.GetDel(ctx, key).Err()
	}
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("notify: presence record of %q: %w", account, err)
	}
	return true, nil
}

// presenceChange is a change seen here, waiting out the debounce.
type presenceChange struct {
	at    time.Time
	timer *time.Timer
}

// Offline notes that account's last connection on this node closed.
func (n *Notifier) Offline(account string) { n.presenceChanged(account) }

// presenceChanged (re)starts account's debounce. Caller does not hold mu.
func (n *Notifier) presenceChanged(account string) {
	if !n.cfg.Presence {
		return
	}
	now := n.now()
	n.pmu.Lock()
	defer n.pmu.Unlock()
	if n.pstopped {
		return
	}
	if c := n.changes[account]; c != nil {
		c.at = now
		c.timer.Reset(n.cfg.PresenceDebounce)
		return
	}
	c := &presenceChange{at: now}
	c.timer = time.AfterFunc(n.cfg.PresenceDebounce, func() { n.settlePresence(account, c) })
	n.changes[account] = c
}

// settlePresence runs once a change held the debounce: the account's state
// across the nodes goes into the record, and an event into the outbox if the
// record changed.
func (n *Notifier) settlePresence(account string, c *presenceChange) {
	n.pmu.Lock()
	if n.changes[account] != c || n.pstopped {
		n.pmu.Unlock()
		return
	}
	delete(n.changes, account)
	at := c.at
	n.psettling.Add(1)
	n.pmu.Unlock()
	defer n.psettling.Done()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	on, err := n.online(ctx, account)
	if err != nil {
		n.log.Warn().Err(err).Str("account", account).Msg("notify: presence not known; no event")
		return
	}
	was, err := n.states.Swap(ctx, account, on)
	if err != nil {
		n.log.Warn().Err(err).Str("account", account).Msg("notify: presence record unreachable; no event")
		return
	}
	if was == on {
		return
	}
	id, err := newEventID()
	if err != nil {
		n.log.Error().Err(err).Str("account", account).Msg("notify: presence event lost")
		return
	}
	ev := PresenceEvent{EventID: id, Type: KindPresence, Account: account, State: "offline", At: at.Unix()}
	if on {
		ev.State = "online"
	}
	body, err := encodeEvent(ev)
	if err == nil {
		err = n.out.Add(ctx, id, KindPresence, account, body, n.now())
	}
	if err != nil {
		n.log.Error().Err(err).Str("account", account).Str("state", ev.State).Msg("notify: presence event lost")
		return
	}
	n.wakeSender()
}

// stopPresence drops the changes still in their debounce and waits for those
// being settled.
func (n *Notifier) stopPresence() {
	n.pmu.Lock()
	n.pstopped = true
	for _, c := range n.changes {
		c.timer.Stop()
	}
	clear(n.changes)
	n.pmu.Unlock()
	n.psettling.Wait()
}
