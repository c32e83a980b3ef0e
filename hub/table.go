package hub

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

const numShards = 256

// Table maps accounts to their connections on this node and keeps the list of every
// connection for broadcasts. It is the routing authority for local delivery: Redis
// mirrors it for other nodes and for the PHP side, but a message to an account
// connected here never waits on Redis.
//
// Lock order: one account shard lock at a time, never while holding a list shard
// lock; a list shard lock is never held while calling out.
type Table struct {
	seed     maphash.Seed
	accounts [numShards]accountShard
	lists    [numShards]listShard
	maxQueue int

	run     string        // this table's run id, the prefix of its connection ids
	nextSeq atomic.Uint64 // numbers the connections (NewConn)
}

type accountShard struct {
	mu sync.Mutex
	m  map[string]entry
}

// entry is one account's connections on this node, held by value in the map (no
// allocation per account): the first connection, whose sibling links the rest.
type entry struct {
	head *Conn
	// offlineSeq counts the messages for this account that were handed to the
	// offline store while the entry existed. A draining connection goes live only
	// if no message went to the store since it last looked (see GoLive).
	offlineSeq uint64
}

type listShard struct {
	mu   sync.Mutex
	head *Conn
	n    int
}

// NewTable returns an empty table. maxQueue bounds the live frames held for one
// connection while its offline backlog drains.
func NewTable(maxQueue int) *Table {
	t := &Table{seed: maphash.MakeSeed(), maxQueue: maxQueue, run: RunID()}
	for i := range t.accounts {
		t.accounts[i].m = make(map[string]entry)
	}
	return t
}

func (t *Table) accountShard(account string) *accountShard {
	return &t.accounts[maphash.String(t.seed, account)%numShards]
}

func (t *Table) listShard(c *Conn) *listShard {
	return &t.lists[c.seq%numShards]
}

// Add puts an upgraded connection on the broadcast list.
func (t *Table) Add(c *Conn) {
	s := t.listShard(c)
	s.mu.Lock()
	c.next = s.head
	if s.head != nil {
		s.head.prev = c
	}
	s.head = c
	s.n++
	s.mu.Unlock()
}

// RemoveRequeue takes a closed connection off the table. It returns the account
// it was bound to ("" if none) and whether it was that account's last
// connection here. An acknowledging connection's unacked messages go back to
// the offline pool first: it also reports how many were stored again and the
// first error doing so.
func (t *Table) RemoveRequeue(c *Conn) (account string, last bool, requeued int, err error) {
	s := t.listShard(c)
	s.mu.Lock()
	if c.prev != nil || s.head == c {
		if c.prev != nil {
			c.prev.next = c.next
		} else {
			s.head = c.next
		}
		if c.next != nil {
			c.next.prev = c.prev
		}
		c.prev, c.next = nil, nil
		s.n--
	}
	s.mu.Unlock()

	if c.account == "" {
		return "", false, 0, nil
	}
	as := t.accountShard(c.account)
	as.mu.Lock()
	defer as.mu.Unlock()
	e, ok := as.m[c.account]
	if !ok {
		return c.account, false, 0, nil
	}
	if e.head == c {
		e.head = c.sibling
	} else {
		for x := e.head; x != nil; x = x.sibling {
			if x.sibling == c {
				x.sibling = c.sibling
				break
			}
		}
	}
	c.sibling = nil
	if e.head == nil {
		delete(as.m, c.account)
	} else {
		as.m[c.account] = e
	}
	// After the removal: with no live connection left the messages go to the
	// pool, where the next init finds them in order: first what c was sent and
	// had not acknowledged, then what was held for it as the only copy.
	requeued, err = t.requeueLocked(as, c.account, c)
	held, herr := t.storeHeldLocked(as, c.account, c)
	c.drain = nil
	if err == nil {
		err = herr
	}
	return c.account, e.head == nil, requeued + held, err
}

// ErrRebind is returned by Bind when a connection already speaks for another account.
type ErrRebind struct{ Bound, Asked string }

func (e *ErrRebind) Error() string {
	return fmt.Sprintf("hub: connection is bound to %q, not %q", e.Bound, e.Asked)
}

// Bind binds c to account (first init) or re-arms it (a later init on the same
// connection) and puts it in the draining state: live messages for it are held
// back, or stored offline if no connection of the account is live, until GoLive.
// With a non-empty peer only messages from peer are held back; others go live.
// It returns the account's offline sequence for GoLive, whether this was the
// connection's first binding, and whether the caller must start a drain (false
// if one is already running for c).
func (t *Table) Bind(c *Conn, account, peer string) (seq uint64, first, start bool, err error) {
	if c.account != "" && c.account != account {
		return 0, false, false, &ErrRebind{Bound: c.account, Asked: account}
	}
	first = c.account == ""
	if first { // a later init (same account) writes nothing: it may run off the connection's flow
		c.account = account
		c.seen.Store(c.seen.Load() | boundBit)
	}
	s := t.accountShard(account)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[account]
	if first {
		c.sibling = e.head
		e.head = c
		s.m[account] = e
	}
	if d := c.drain; d != nil {
		// A drain of c is running (the handlers hold c's frames until it is
		// over, so this is a caller's mistake): keep it, hold every sender.
		d.peer = ""
		return e.offlineSeq, first, false, nil
	}
	c.drain = &drainState{peer: peer}
	return e.offlineSeq, first, true, nil
}

// GoLive makes a draining connection live if no message for its account was
// handed to the offline store since seq was read. Then it writes the frames
// held back for c, in order, and returns true. Otherwise it returns false and the
// current sequence: the caller drains again and retries.
func (t *Table) GoLive(c *Conn, seq uint64) (uint64, bool) {
	s := t.accountShard(c.account)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[c.account]
	if !ok || c.drain == nil { // closed meanwhile
		return 0, true
	}
	if e.offlineSeq != seq {
		return e.offlineSeq, false
	}
	t.flushQueueLocked(s, c)
	return seq, true
}

// Capture starts the last pass of c's drain: from now on a message for the
// account that finds no live connection is held for c (up to the queue limit)
// instead of stored, so the pass reads a backlog that nothing is added to, and
// no lock is held while it reads. It returns the sequence for GoLive, and false
// if c is gone.
func (t *Table) Capture(c *Conn) (uint64, bool) {
	s := t.accountShard(c.account)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[c.account]
	if !ok || c.drain == nil {
		return 0, false
	}
	c.drain.capture = true
	return e.offlineSeq, true
}

// ForceLive makes c live whatever is still pending; used when the backlog cannot
// be read (storage down): live chat keeps working and the rows stay pending.
func (t *Table) ForceLive(c *Conn) {
	s := t.accountShard(c.account)
	s.mu.Lock()
	t.flushQueueLocked(s, c)
	s.mu.Unlock()
}

// flushQueueLocked writes what was held for c, in order, and makes c live. A
// message held as its only copy that cannot be written (c is closing) is
// stored, so that it waits for the next init. Caller holds s.mu.
func (t *Table) flushQueueLocked(s *accountShard, c *Conn) {
	d := c.drain
	if d == nil {
		return
	}
	c.drain = nil
	closing := false
	for _, q := range d.queue {
		if !closing {
			if w, taken := c.writeTracked(q.frame, q.item); w || taken {
				if w && q.only {
					released(q.item)
				}
				continue
			}
			closing = true // Remove cleans up what c had acknowledged
		}
		if q.only {
			_ = t.storeLocked(s, c.account, requeue(q.item))
		}
	}
}

// storeHeldLocked stores the messages held for c as their only copy, in order,
// and stops holding for it. Caller holds s.mu.
func (t *Table) storeHeldLocked(s *accountShard, account string, c *Conn) (n int, err error) {
	d := c.drain
	if d == nil {
		return 0, nil
	}
	d.capture = false
	kept := d.queue[:0]
	for _, q := range d.queue {
		if !q.only {
			kept = append(kept, q)
			continue
		}
		if e := t.storeLocked(s, account, requeue(q.item)); e != nil && err == nil {
			err = e
		}
		n++
	}
	clear(d.queue[len(kept):])
	d.queue = kept
	return n, err
}

// Releaser is implemented by items that want to know when a message held for
// a draining connection was written to it (a sender waiting for its ack).
type Releaser interface{ Released() }

func released(it Item) {
	if r, ok := it.(Releaser); ok {
		r.Released()
	}
}

// Online reports whether account has a connection on this node.
func (t *Table) Online(account string) bool {
	s := t.accountShard(account)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[account]
	return ok
}

// Len returns the number of connections on the broadcast list.
func (t *Table) Len() int {
	n := 0
	for i := range t.lists {
		s := &t.lists[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// Idle returns the connections whose last frame arrived before the given time
// (server clock, seconds). One pass over the list under each shard's lock: at a
// million connections a sweep costs milliseconds, where a timer per connection
// would cost well over a hundred bytes each.
func (t *Table) Idle(before uint32) []*Conn {
	var out []*Conn
	for i := range t.lists {
		s := &t.lists[i]
		s.mu.Lock()
		for c := s.head; c != nil; c = c.next {
			if c.lastSeen() < before {
				out = append(out, c)
			}
		}
		s.mu.Unlock()
	}
	return out
}

// Binding is one bound connection: its account and id.
type Binding struct{ Account, Conn string }

// Bindings lists every bound connection on this node (for re-registering them
// in the shared account map after it was unreachable).
func (t *Table) Bindings() []Binding {
	var out []Binding
	for i := range t.accounts {
		s := &t.accounts[i]
		s.mu.Lock()
		for account, e := range s.m {
			for c := e.head; c != nil; c = c.sibling {
				out = append(out, Binding{Account: account, Conn: t.ConnID(c)})
			}
		}
		s.mu.Unlock()
	}
	return out
}
