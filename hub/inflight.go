package hub

import (
	"context"
	"sync"
)

// Item is one message on its way to a connection whose client acknowledges what
// it receives (init with "ack":true). If the connection closes before the ack,
// Store puts the message back in the offline pool (a no-op for a row that is
// still there); the table calls it under the account's lock, in send order.
type Item interface {
	ID() string
	Store() error
}

// Requeuer is an Item that stores itself differently when it went through
// already (written to a connection that then closed, or held for one): such a
// message was accepted, and storing it must not be refused for a full queue.
type Requeuer interface{ Requeue() error }

// requeue is how the table stores an item that went through already.
func requeue(it Item) func() error {
	if r, ok := it.(Requeuer); ok {
		return r.Requeue
	}
	return it.Store
}

// inflight is what was written to an acknowledging connection and not yet
// acknowledged, oldest first.
type inflight struct {
	mu     sync.Mutex
	items  []Item
	closed bool
	max    int
	room   chan struct{} // closed at the next ack or close; nil if nobody waits
}

// add records it before it is written. It returns false if the connection has
// closed (the caller treats the write as failed) or if too many are unacked
// (the caller closes the connection as a slow consumer).
func (f *inflight) add(it Item) (ok, full bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false, false
	}
	if len(f.items) >= f.max {
		return false, true
	}
	f.items = append(f.items, it)
	return true, false
}

// remove takes it back after a failed write; false means the close already
// took it (and stored it).
func (f *inflight) remove(it Item) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.items) - 1; i >= 0; i-- {
		if f.items[i] == it {
			f.items = append(f.items[:i], f.items[i+1:]...)
			return true
		}
	}
	return false
}

// ackUpTo removes the item with id and every one before it (acks are
// cumulative: frames arrive in order). Unknown ids remove nothing.
func (f *inflight) ackUpTo(id string) []Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, it := range f.items {
		if it.ID() == id {
			done := append([]Item(nil), f.items[:i+1]...)
			f.items = append(f.items[:0], f.items[i+1:]...)
			f.wakeLocked()
			return done
		}
	}
	return nil
}

func (f *inflight) wakeLocked() {
	if f.room != nil {
		close(f.room)
		f.room = nil
	}
}

// waitBelow waits until fewer than n items are unacknowledged. It returns
// false if the connection closed or ctx ended first.
func (f *inflight) waitBelow(ctx context.Context, n int) bool {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return false
		}
		if len(f.items) < n {
			f.mu.Unlock()
			return true
		}
		if f.room == nil {
			f.room = make(chan struct{})
		}
		room := f.room
		f.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return false
		}
	}
}

// close marks the connection gone and returns what it had not acknowledged.
func (f *inflight) close() []Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	items := f.items
	f.items = nil
	f.wakeLocked()
	return items
}

// EnableAcks makes c an acknowledging connection: frames written to it are kept
// until acknowledged, at most max (past it the connection is closed as too
// slow). Call it from c's own handler flow, before it goes live.
func (t *Table) EnableAcks(c *Conn, max int) {
	s := t.accountShard(c.account)
	s.mu.Lock()
	switch {
	case c.extra == nil:
		c.extra = &connExtra{inflight: &inflight{max: max}}
	case c.extra.inflight == nil:
		c.extra.inflight = &inflight{max: max}
	}
	s.mu.Unlock()
}

// Acks reports whether c acknowledges what it receives.
func (c *Conn) Acks() bool { return c.acks() != nil }

// Ack removes the message with id, and every one before it, from c's unacked
// list and returns them.
func (c *Conn) Ack(id string) []Item {
	f := c.acks()
	if f == nil {
		return nil
	}
	return f.ackUpTo(id)
}

// Track records an item written outside Deliver (the drain) on an
// acknowledging connection; false means c is closed or too far behind.
func (c *Conn) Track(it Item) bool {
	f := c.acks()
	if f == nil {
		return true
	}
	ok, _ := f.add(it)
	return ok
}

// WaitWindow waits until an acknowledging connection has fewer than n
// messages unacknowledged, so that a backlog goes out in windows the client
// can acknowledge. It returns false if c closed or ctx ended first; a legacy
// connection never waits.
func (c *Conn) WaitWindow(ctx context.Context, n int) bool {
	f := c.acks()
	if f == nil {
		return true
	}
	return f.waitBelow(ctx, n)
}

// writeTracked writes frame to c, recording it first on an acknowledging
// connection. It reports whether the frame is c's now, and whether c's close
// already took it back (stored).
func (c *Conn) writeTracked(frame []byte, it Item) (written, taken bool) {
	f := c.acks()
	if f == nil || it == nil {
		return c.WriteFrame(frame) == nil, false
	}
	ok, full := f.add(it)
	if full {
		c.Close(CloseUnacked)
	}
	if !ok {
		return false, false
	}
	if c.WriteFrame(frame) == nil {
		return true, false
	}
	return false, !f.remove(it)
}

// requeueLocked stores what c had not acknowledged, oldest first, and closes
// its list. Caller holds the account's shard lock (so nothing newer for the
// account is stored before them).
func (t *Table) requeueLocked(s *accountShard, account string, c *Conn) (n int, err error) {
	f := c.acks()
	if f == nil {
		return 0, nil
	}
	for _, it := range f.close() {
		if e := t.storeLocked(s, account, requeue(it)); e != nil && err == nil {
			err = e
		}
		n++
	}
	return n, err
}
