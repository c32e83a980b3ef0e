package hub

import (
	"errors"
	"fmt"
)

// The drain state of a connection: from init (Bind) until its offline backlog
// is out and it goes live (GoLive), live messages for it are held back.

// ErrRebind is returned by Bind when a connection already speaks for another account.
type ErrRebind struct{ Bound, Asked string }

func (e *ErrRebind) Error() string {
	return fmt.Sprintf("hub: connection is bound to %q, not %q", e.Bound, e.Asked)
}

// ErrRemoved is returned by Bind for a connection already taken off the table
// (it is closing: a frame it sent before it learnt so is being served).
var ErrRemoved = errors.New("hub: the connection is closing")

// ErrAccountFull is returned by Bind when the account already has limit
// connections on this node.
type ErrAccountFull struct {
	Account string
	Limit   int
}

func (e *ErrAccountFull) Error() string {
	return fmt.Sprintf("hub: account %q already has %d connections on this node", e.Account, e.Limit)
}

// Bind binds c to account (first init) or re-arms it (a later init on the same
// connection) and puts it in the draining state: live messages for it are held
// back, or stored offline if no connection of the account is live, until GoLive.
// With a non-empty peer only messages from peer are held back; others go live.
// A first binding is refused with *ErrAccountFull when the account already has
// limit connections on this node (0: no limit); c stays unbound.
// It returns the account's offline sequence for GoLive, whether this was the
// connection's first binding, and whether the caller must start a drain (false
// if one is already running for c).
func (t *Table) Bind(c *Conn, account, peer string, limit int) (seq uint64, first, start bool, err error) {
	if c.Removed() { // taken off by Retire, which runs on c's flow as Bind does
		return 0, false, false, ErrRemoved
	}
	if c.account != "" && c.account != account {
		return 0, false, false, &ErrRebind{Bound: c.account, Asked: account}
	}
	first = c.account == ""
	s := t.accountShard(account)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[account]
	if first {
		// Counted and added under the one lock: two inits racing for the
		// last place cannot both get it.
		if limit > 0 && e.count(limit) >= limit {
			return 0, false, false, &ErrAccountFull{Account: account, Limit: limit}
		}
		// A later init (same account) writes nothing: it may run off the
		// connection's flow.
		c.account = account
		c.seen.Or(boundBit)
		c.sibling = e.head
		e.head = c
		s.m[account] = e
	}
	if d := c.drain; d != nil {
		// A drain of c is running (the handlers hold c's frames until it is
		// over, so this is a caller's mistake): keep it, hold every sender.
		d.peer = ""
		d.again = true
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
	if e.offlineSeq != seq || c.drain.again {
		c.drain.again = false
		return e.offlineSeq, false
	}
	t.flushQueueLocked(s, c)
	return seq, true
}

// Conns lists account's connections on this node.
func (t *Table) Conns(account string) []*Conn {
	s := t.accountShard(account)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Conn
	for c := s.m[account].head; c != nil; c = c.sibling {
		out = append(out, c)
	}
	return out
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
