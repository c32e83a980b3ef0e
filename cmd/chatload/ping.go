package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// pinger measures application-level round trips ({"flag":"ping"} ->
// {"flag":"pong"}) on a few connections while a pairs run goes on: what a
// client's keep-alive sees while the server is busy or a dependency hangs.
// One ping is in flight per connection; a tick that finds the previous ping
// unanswered sends nothing, so a stalled server shows as a long round trip
// (recorded when the pong comes) or as unanswered pings at the end.
type pinger struct {
	mu       sync.Mutex // guards h
	h        hist
	sent     atomic.Int64
	answered atomic.Int64
	conns    []*wsConn
	msg      []byte
}

func newPinger(conns []*wsConn) *pinger {
	p := &pinger{conns: conns, msg: []byte(`{"flag":"ping"}`)}
	for _, c := range conns {
		c.pinger.Store(p)
	}
	return p
}

// run pings every connection each period until ctx is done.
func (p *pinger) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range p.conns {
			p.ping(c)
		}
	}
}

func (p *pinger) ping(c *wsConn) {
	now := time.Now().UnixNano()
	if c.closed.Load() || !c.pingAt.CompareAndSwap(0, now) {
		return // closed, or the last ping is still unanswered
	}
	if err := c.writeText(p.msg); err != nil {
		c.pingAt.Store(0)
		return
	}
	p.sent.Add(1)
}

// pong records the round trip of c's outstanding ping; a pong with no ping
// of ours outstanding (init's, a heartbeat's) is not a sample.
func (p *pinger) pong(c *wsConn, now int64) {
	at := c.pingAt.Swap(0)
	if at == 0 {
		return
	}
	p.answered.Add(1)
	p.mu.Lock()
	p.h.record(time.Duration(now - at))
	p.mu.Unlock()
}

// settle waits up to d for the pings in flight to be answered.
func (p *pinger) settle(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		open := false
		for _, c := range p.conns {
			if c.pingAt.Load() != 0 && !c.closed.Load() {
				open = true
				break
			}
		}
		if !open {
			return
		}
		sleepCtx(ctx, 5*time.Millisecond)
	}
}

// stop detaches the pinger from its connections and returns its summary;
// pings still unanswered count as such.
func (p *pinger) stop() *pingStat {
	var open int64
	for _, c := range p.conns {
		c.pinger.Store(nil)
		if c.pingAt.Swap(0) != 0 {
			open++
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return &pingStat{Conns: len(p.conns), Sent: p.sent.Load(), Answered: p.answered.Load(),
		Unanswered: open, Hist: p.h.entries(), MaxNs: p.h.max}
}

// pingStat is a worker's ping summary on the wire.
type pingStat struct {
	Conns      int         `json:"conns"`
	Sent       int64       `json:"sent"`
	Answered   int64       `json:"answered"`
	Unanswered int64       `json:"unanswered"` // still waiting when the run ended
	Hist       []histEntry `json:"hist,omitempty"`
	MaxNs      int64       `json:"max_ns"`
}

// pingResult is the coordinator's ping report for a run.
type pingResult struct {
	Conns      int     `json:"conns"`
	EveryMs    float64 `json:"every_ms"`
	Sent       int64   `json:"sent"`
	Answered   int64   `json:"answered"`
	Unanswered int64   `json:"unanswered"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
}

// pingAgg merges the workers' ping summaries.
type pingAgg struct {
	r pingResult
	h hist
}

func (a *pingAgg) add(s *pingStat) {
	if s == nil {
		return
	}
	a.r.Conns += s.Conns
	a.r.Sent += s.Sent
	a.r.Answered += s.Answered
	a.r.Unanswered += s.Unanswered
	a.h.merge(s.Hist, s.MaxNs)
}

func (a *pingAgg) result(every time.Duration) *pingResult {
	r := a.r
	r.EveryMs = ms(every)
	r.P50ms, r.P99ms, r.MaxMs = ms(a.h.quantile(0.50)), ms(a.h.quantile(0.99)), ms(time.Duration(a.h.max))
	return &r
}
