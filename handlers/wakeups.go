package handlers

import (
	"container/heap"
	"sync"
	"time"

	"chatserver/hub"
)

// wakeSlack: a wakeup serves the frames due within this much of now, so that
// frames due a little apart go out in one job rather than one job each. The
// rate limit is kept to within it.
const wakeSlack = int64(time.Millisecond)

// wakeups calls fire(c) once the time each connection asked for has come,
// from one runtime timer shared by every connection: nothing runs while
// nothing is due (no goroutine, no ticker), and a connection with frames
// waiting costs one heap entry. fire runs on the timer's goroutine and must
// not block.
type wakeups struct {
	clock func() int64 // ns, the rate limit's clock
	fire  func(c *hub.Conn)

	mu    sync.Mutex
	queue wakeHeap
	timer *time.Timer // nil until the first wakeup
	set   int64       // when the timer fires, on clock; 0: not set
}

type wake struct {
	due int64
	c   *hub.Conn
}

// at asks for fire(c) at due (on clock).
func (w *wakeups) at(c *hub.Conn, due int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	heap.Push(&w.queue, wake{due: due, c: c})
	if w.set == 0 || due < w.set {
		w.arm(due)
	}
}

// arm sets the timer for due. w.mu is held.
func (w *wakeups) arm(due int64) {
	d := time.Duration(due - w.clock())
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.run)
	} else {
		w.timer.Reset(d)
	}
	w.set = due
}

// run fires every wakeup that is due and sets the timer for the next one.
func (w *wakeups) run() {
	now := w.clock()
	var due []*hub.Conn
	w.mu.Lock()
	fire := w.fire
	for len(w.queue) > 0 && w.queue[0].due <= now+wakeSlack {
		due = append(due, heap.Pop(&w.queue).(wake).c)
	}
	w.set = 0
	if len(w.queue) > 0 {
		w.arm(w.queue[0].due)
	}
	w.mu.Unlock()
	for _, c := range due {
		fire(c)
	}
}

// wakeHeap orders wakeups by due time (container/heap).
type wakeHeap []wake

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wake)) }
func (h *wakeHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = wake{}
	*h = old[:n-1]
	return x
}
