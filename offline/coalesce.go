package offline

import (
	"context"
	"fmt"
)

// coalescer runs one database statement for many callers. Requests that arrive
// while a statement runs wait and share the next one (up to max), so under load
// a burst of inits costs a few round trips and commits instead of one each; when
// quiet, a request runs at once. One goroutine runs the statements in order.
type coalescer[Req, Rep any] struct {
	name string
	max  int
	exec func(ctx context.Context, batch []Req) ([]Rep, error)
	reqs chan call[Req, Rep]
	done chan struct{}
}

type call[Req, Rep any] struct {
	ctx   context.Context
	req   Req
	reply chan result[Rep]
}

type result[Rep any] struct {
	rep Rep
	err error
}

func newCoalescer[Req, Rep any](name string, max int, exec func(context.Context, []Req) ([]Rep, error)) *coalescer[Req, Rep] {
	c := &coalescer[Req, Rep]{name: name, max: max, exec: exec, reqs: make(chan call[Req, Rep], 4096), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *coalescer[Req, Rep]) stop() { close(c.done) }

// do submits req and waits for its share of the result.
func (c *coalescer[Req, Rep]) do(ctx context.Context, req Req) (Rep, error) {
	var zero Rep
	cl := call[Req, Rep]{ctx: ctx, req: req, reply: make(chan result[Rep], 1)}
	select {
	case c.reqs <- cl:
	case <-ctx.Done():
		return zero, fmt.Errorf("offline: %s: %w", c.name, ctx.Err())
	case <-c.done:
		return zero, fmt.Errorf("offline: %s: store closed", c.name)
	}
	select {
	case r := <-cl.reply:
		return r.rep, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("offline: %s: %w", c.name, ctx.Err())
	}
}

func (c *coalescer[Req, Rep]) run() {
	batch := make([]call[Req, Rep], 0, c.max)
	reqs := make([]Req, 0, c.max)
	for {
		batch, reqs = batch[:0], reqs[:0]
		select {
		case cl := <-c.reqs:
			batch = append(batch, cl)
		case <-c.done:
			return
		}
	more:
		for len(batch) < c.max {
			select {
			case cl := <-c.reqs:
				batch = append(batch, cl)
			default:
				break more
			}
		}
		// Skip callers that gave up; run under the first live caller's context.
		var ctx context.Context
		live := batch[:0]
		for _, cl := range batch {
			if cl.ctx.Err() == nil {
				live = append(live, cl)
				reqs = append(reqs, cl.req)
				if ctx == nil {
					ctx = cl.ctx
				}
			}
		}
		if len(live) == 0 {
			continue
		}
		reps, err := c.exec(context.WithoutCancel(ctx), reqs)
		for i, cl := range live {
			var r result[Rep]
			if err != nil {
				r.err = err
			} else {
				r.rep = reps[i]
			}
			cl.reply <- r
		}
	}
}
