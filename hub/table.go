package hub

import (
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

// count returns how many connections e has, counting no further than upTo.
func (e entry) count(upTo int) int {
	n := 0
	for c := e.head; c != nil && n < upTo; c = c.sibling {
		n++
	}
	return n
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

// The life of a connection in the table. The transport (server/) adds every
// upgraded connection (NewConn, Add: it is on the broadcast list and swept when
// idle) and removes it when it closes (Remove), then tells the handlers what
// the removal did (server.Hooks.OnClose). In between, the handlers bind it to
// an account at init (Bind: its backlog drains while live messages are held
// for it), make it live (GoLive), and for a client that acknowledges what it
// receives, enable receiver acks (EnableReceiverAcks). Remove takes it off the
// list and the account's connections, and stores again, in order, what it had
// not acknowledged and what was held for it as the only copy.

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

// Removal is what taking a closed connection off the table did.
type Removal struct {
	// Again: the connection had been taken off already (Retire, then its
	// socket's close); nothing was done this time.
	Again    bool
	Account  string // the account it was bound to; "" if none
	Last     bool   // it was the account's last connection on this node
	Requeued int    // messages stored again: not acknowledged by the receiver, or held for it
	Err      error  // the first error storing them again
}

// Remove takes a closed connection off the table: off the broadcast list and
// its account's connections. Its messages not acknowledged by the receiver,
// then those held for it as their only copy, go back to the offline pool.
// A connection is taken off once: a second call (after Retire) returns a
// Removal with Again set and does nothing.
func (t *Table) Remove(c *Conn) Removal {
	if !c.markRemoved() {
		return Removal{Again: true}
	}
	return t.remove(c)
}

// Retire takes a connection that is still open off the table, as Remove does,
// before it is closed: nothing is written to it any more (what comes for its
// account goes to its other connections or to the offline pool), and frames
// it sent meanwhile can still be served, but it is never bound again. Call it
// on the connection's own handler flow (Conn.Run), where its inits run. It
// returns false if the connection was taken off already.
func (t *Table) Retire(c *Conn) (Removal, bool) {
	if !c.markRemoved() {
		return Removal{Again: true}, false
	}
	return t.remove(c), true
}

func (t *Table) remove(c *Conn) Removal {
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
		return Removal{}
	}
	as := t.accountShard(c.account)
	as.mu.Lock()
	defer as.mu.Unlock()
	e, ok := as.m[c.account]
	if !ok {
		return Removal{Account: c.account}
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
	requeued, err := t.requeueLocked(as, c.account, c)
	held, herr := t.storeHeldLocked(as, c.account, c)
	c.drain = nil
	if err == nil {
		err = herr
	}
	return Removal{Account: c.account, Last: e.head == nil, Requeued: requeued + held, Err: err}
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

// Sweep returns the connections whose last frame arrived before idleBefore
// (server clock, seconds), and the others whose expiry (SetExpiry) is at or
// before now (unix seconds). One pass over the list under each shard's lock: at
// a million connections a sweep costs milliseconds, where a timer per
// connection would cost well over a hundred bytes each.
func (t *Table) Sweep(idleBefore, now uint32) (idle, expired []*Conn) {
	for i := range t.lists {
		s := &t.lists[i]
		s.mu.Lock()
		for c := s.head; c != nil; c = c.next {
			switch {
			case c.lastSeen() < idleBefore:
				idle = append(idle, c)
			case c.Expired(now):
				expired = append(expired, c)
			}
		}
		s.mu.Unlock()
	}
	return idle, expired
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
