package offline

import (
	"container/heap"
	"sync/atomic"
	"time"
)

// A sender who asked for an acknowledgement is told "stored" only once its
// message is committed. Waiting for that must not hold a goroutine of the
// connection's handler flow (a slow or hanging database would take the whole
// pool with it), so the writer calls back instead.

// notice is one callback waiting for a ticket to be committed.
type notice struct {
	ticket uint64
	fn     func(written bool)
	fired  atomic.Bool
	timer  *time.Timer
}

func (n *notice) fire(written bool) {
	if !n.fired.CompareAndSwap(false, true) {
		return
	}
	if written {
		n.timer.Stop()
	}
	n.fn(written)
}

// notices is a min-heap of notices by ticket.
type notices []*notice

func (h notices) Len() int           { return len(h) }
func (h notices) Less(i, j int) bool { return h[i].ticket < h[j].ticket }
func (h notices) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *notices) Push(x any)        { *h = append(*h, x.(*notice)) }
func (h *notices) Pop() any {
	old := *h
	n := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return n
}

// NotifyWritten calls fn(true) once the message with ticket, and every one
// before it, is committed, or fn(false) after timeout if it is not by then (it
// stays queued and is still written). fn is called once, never under the
// writer's lock, possibly before NotifyWritten returns; it must not block.
func (w *Writer) NotifyWritten(ticket uint64, timeout time.Duration, fn func(written bool)) {
	n := &notice{ticket: ticket, fn: fn}
	n.timer = time.AfterFunc(timeout, func() { n.fire(false) })
	w.mu.Lock()
	if w.written >= ticket {
		w.mu.Unlock()
		n.fire(true)
		return
	}
	heap.Push(&w.notices, n)
	w.mu.Unlock()
}

// dueLocked takes the notices whose ticket is written. Caller holds w.mu.
func (w *Writer) dueLocked() []*notice {
	var due []*notice
	for len(w.notices) > 0 && w.notices[0].ticket <= w.written {
		due = append(due, heap.Pop(&w.notices).(*notice))
	}
	return due
}
