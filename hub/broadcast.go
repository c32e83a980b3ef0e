package hub

import (
	"runtime"
	"sync"
)

// Broadcast writes frame to every bound connection on the list (a connection
// that has not sent init, or whose init was refused, gets nothing unless
// unbound is set), spread over the CPUs. It returns how many writes
// succeeded. A slow or closing connection costs one failed write and does not
// hold up the others.
func (t *Table) Broadcast(frame []byte, unbound bool) int {
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
				if (unbound || c.bound()) && c.WriteFrame(frame) == nil {
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

// Snapshot lists every connection on the broadcast list now.
func (t *Table) Snapshot() []*Conn { return t.snapshot() }

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
