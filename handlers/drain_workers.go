package handlers

import (
	"sync"

	"chatserver/hub"
)

// drainJob is one init's backlog to push.
type drainJob struct {
	c             *hub.Conn
	account, peer string
	seq           uint64
}

// drainer runs the inits' drains on goroutines of their own, at most max at
// once (the rest wait their turn in order), so that a slow or hanging database
// holds up neither the event loops nor the handler pool: pings, receiver acks and live
// messages go on. No goroutine is kept while nothing drains.
type drainer struct {
	run func(drainJob)
	max int

	mu      sync.Mutex
	queue   []drainJob
	running int
}

func newDrainer(max int, run func(drainJob)) *drainer { return &drainer{run: run, max: max} }

func (d *drainer) submit(j drainJob) {
	d.mu.Lock()
	d.queue = append(d.queue, j)
	spawn := d.running < d.max
	if spawn {
		d.running++
	}
	d.mu.Unlock()
	if spawn {
		go d.work()
	}
}

// idle reports whether no drain runs or waits.
func (d *drainer) idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running == 0
}

func (d *drainer) work() {
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			d.running--
			d.queue = nil
			d.mu.Unlock()
			return
		}
		j := d.queue[0]
		d.queue[0] = drainJob{}
		d.queue = d.queue[1:]
		d.mu.Unlock()
		d.run(j)
	}
}
