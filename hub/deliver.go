package hub

import (
	"runtime"
	"sync"
)

// Delivery says what became of a message.
type Delivery struct {
	Pushed int  // connections the frame was written to
	Stored bool // handed to the offline store
	// Held: held for a connection in the last pass of its drain, to be written
	// when it goes live (the item is told, see Releaser) or stored if it closes.
	Held bool
}

// Deliver routes one message from sender to account. Live connections of the
// account get frame now; connections still draining their backlog get it after
// the backlog. If no connection takes it live, item.Store is called (under the
// account's lock, so that a connection going live cannot miss it) and the
// message waits in the offline store for the next init. Acknowledging
// connections keep item until acked, and store it again if they close first.
//
// Messages from one sender must be delivered one after another (the handler flow
// of a connection is serial), which is what keeps them in order.
func (t *Table) Deliver(account, sender string, frame []byte, item Item) (Delivery, error) {
	var (
		targets []*Conn
		slow    []*Conn
		one     [4]*Conn
		held    bool
	)
	s := t.accountShard(account)
	s.mu.Lock()
	e, ok := s.m[account]
	if ok {
		targets = one[:0]
		live := false
		for c := e.head; c != nil; c = c.sibling {
			if c.acceptsLive(sender) {
				live = true
				break
			}
		}
		for c := e.head; c != nil; c = c.sibling {
			switch {
			case c.acceptsLive(sender):
				targets = append(targets, c)
			case live && len(c.drain.queue) < t.maxQueue:
				c.drain.queue = append(c.drain.queue, queued{frame: frame, item: item})
			case live:
				slow = append(slow, c)
			case c.drain.capture && len(c.drain.queue) < t.maxQueue:
				c.drain.queue = append(c.drain.queue, queued{frame: frame, item: item, only: true})
				held = true
			case c.drain.capture:
				// Too much for the last pass to hold: what it held goes to
				// the store, before this message, and the drain reads again.
				_, _ = t.storeHeldLocked(s, account, c)
			}
		}
	}
	if held && len(targets) == 0 {
		s.mu.Unlock()
		closeSlow(slow)
		return Delivery{Held: true}, nil
	}
	if len(targets) == 0 {
		err := t.storeLocked(s, account, item.Store)
		s.mu.Unlock()
		closeSlow(slow)
		if err != nil {
			return Delivery{}, err
		}
		return Delivery{Stored: true}, nil
	}
	s.mu.Unlock()
	closeSlow(slow)

	// Written outside the lock: a socket error closes the connection, and nbio
	// runs the close callback (which takes this lock) from another goroutine.
	pushed, taken := 0, false
	var failed []*Conn
	for _, c := range targets {
		w, tk := c.writeTracked(frame, item)
		switch {
		case w:
			pushed++
		case tk:
			taken = true
		default:
			failed = append(failed, c)
		}
	}
	if pushed > 0 || taken {
		return Delivery{Pushed: pushed, Stored: pushed == 0}, nil
	}
	// Every target was closing: store it rather than lose it, after what those
	// connections had not acknowledged (older, so first).
	s.mu.Lock()
	for _, c := range failed {
		_, _ = t.requeueLocked(s, account, c)
	}
	err := t.storeLocked(s, account, item.Store)
	s.mu.Unlock()
	if err != nil {
		return Delivery{}, err
	}
	return Delivery{Stored: true}, nil
}

// storeLocked hands a message to the offline store and counts it against the
// account's entry, if it has one. Caller holds s.mu.
func (t *Table) storeLocked(s *accountShard, account string, store func() error) error {
	if err := store(); err != nil {
		return err
	}
	if e, ok := s.m[account]; ok {
		e.offlineSeq++
		s.m[account] = e
	}
	return nil
}

func closeSlow(cs []*Conn) {
	for _, c := range cs {
		c.Close(CloseQueueFull)
	}
}

// Broadcast writes frame to every bound connection on the list (a connection
// that has not sent init, or whose init was refused, gets nothing), spread
// over the CPUs. It returns how many writes succeeded. A slow or closing connection costs one
// failed write and does not hold up the others.
func (t *Table) Broadcast(frame []byte) int {
	conns := t.snapshot()
	workers := runtime.GOMAXPROCS(0)
	if workers > len(conns)/512+1 {
		workers = len(conns)/512 + 1
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	per := (len(conns) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, len(conns))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(part []*Conn) {
			defer wg.Done()
			n := 0
			for _, c := range part {
				if c.bound() && c.WriteFrame(frame) == nil {
					n++
				}
			}
			mu.Lock()
			ok += n
			mu.Unlock()
		}(conns[lo:hi])
	}
	wg.Wait()
	return ok
}

func (t *Table) snapshot() []*Conn {
	out := make([]*Conn, 0, t.Len())
	for i := range t.lists {
		s := &t.lists[i]
		s.mu.Lock()
		for c := s.head; c != nil; c = c.next {
			out = append(out, c)
		}
		s.mu.Unlock()
	}
	return out
}

// Each calls fn for every connection on the list (a snapshot; fn runs unlocked).
func (t *Table) Each(fn func(c *Conn)) {
	for _, c := range t.snapshot() {
		fn(c)
	}
}
