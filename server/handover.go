package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"chatserver/hub"
)

// Handover. A new server process starts beside this one on the same ports
// (SO_REUSEPORT, Config.ReusePort); then this one hands its connections over:
// it closes its listening sockets, so the kernel sends every new connection
// to the new process, and closes its connections a batch at a time, at a
// steady rate with jitter, each with 1012 (service restart) and a reason that
// tells clients within how long to reconnect. The clients come back to the
// new process spread over the handover instead of all in the same second.
//
// Each connection is taken off the table first (Table.Retire, on its own
// handler flow): nothing more is written to it, what it had not acknowledged
// goes to the offline pool, and Settle lets the offline writer commit that
// before the close frame tells the client to reconnect, so its next init (in
// the new process) finds it. Its socket stays open until the client answers
// the close frame (or Linger passes), so that frames it sent before it read
// ours are still served.

// Handover is how the connections are handed over.
type Handover struct {
	// Rate is how many connections are closed a second. When that would take
	// longer than ctx allows, the rate is raised to end in time.
	Rate int
	// Hint is the window the close reason gives clients to reconnect in
	// (hub.RestartReason); they pick a random moment in it.
	Hint time.Duration
	// Linger bounds how long a closed connection's socket waits for the
	// client's close frame.
	Linger time.Duration
	// Settle runs after each batch was taken off the table and before its
	// close frames go out (the offline writer commits what was stored
	// again). nil: nothing to wait for.
	Settle func(ctx context.Context) error
}

// HandoverResult says what a handover did.
type HandoverResult struct {
	Closed  int           // connections closed with 1012
	Batches int           // batches they were closed in
	Rate    float64       // connections a second aimed at (raised to end in time)
	Took    time.Duration // from the listeners' close to the last socket closed
}

// handoverTick is the mean time between batches; each wait is drawn between
// half and one and a half of it.
const handoverTick = 100 * time.Millisecond

// flowWait bounds the wait for a batch's connections to be taken off the
// table on their handler flows (a flow busy with a long frame).
const flowWait = time.Second

// settleWait bounds Settle for one batch (a database that does not answer):
// the messages stay queued and are committed later, by this process's
// shutdown or its spool.
const settleWait = 3 * time.Second

// Handover stops accepting connections and closes those it has at h.Rate,
// until none is left or ctx ends (then the rest are closed at once). It
// returns once every socket it closed is closed, or ctx ended. The engine
// keeps running: Shutdown ends it.
func (s *Server) Handover(ctx context.Context, h Handover) (HandoverResult, error) {
	if !s.running.Load() {
		return HandoverResult{}, fmt.Errorf("server: handover: the server is not running")
	}
	if h.Rate <= 0 || h.Linger <= 0 || h.Hint < 0 {
		return HandoverResult{}, fmt.Errorf("server: handover: rate %d, hint %v, linger %v: want a positive rate and linger", h.Rate, h.Hint, h.Linger)
	}
	start := time.Now()
	s.probes.Drain()
	s.sockets.stopAccepting()
	rate := float64(h.Rate)
	if n := s.table.Len(); n > 0 {
		if d, ok := ctx.Deadline(); ok {
			// The pacing ends a linger (and a tick) before the deadline.
			if left := time.Until(d) - h.Linger - handoverTick; left > 0 && float64(n)/rate > left.Seconds() {
				rate = float64(n) / left.Seconds()
				s.log.Warn().Int("connections", n).Int("rate", h.Rate).Float64("raised_to", rate).
					Msg("handover: the rate would not close every connection within server.shutdown_timeout; raised")
			}
		}
	}
	reason := hub.RestartReason(h.Hint)
	res := HandoverResult{Rate: rate}
	// The pace follows the clock: each batch closes what is due by now at
	// rate, so the time a batch takes does not slow the rate down.
	paceStart := time.Now()
	taken := 0 // connections handed to a batch (some close on their own)
	maxBatch := max(int(rate*(handoverTick*3/2).Seconds()), 1)
	for ctx.Err() == nil {
		conns := s.table.Snapshot() // again at the end: connections upgraded meanwhile
		if len(conns) == 0 {
			break
		}
		for i := 0; i < len(conns) && ctx.Err() == nil; {
			// At most what the longest wait gives: when batches take longer
			// than the rate allows, the rate gives way, not the spread.
			due := min(int(rate*time.Since(paceStart).Seconds())+1-taken, maxBatch)
			if due > 0 {
				batch := conns[i:min(i+due, len(conns))]
				i += len(batch)
				taken += len(batch)
				res.Closed += s.retireBatch(batch, h, reason)
				res.Batches++
			}
			if i < len(conns) {
				sleepCtx(ctx, handoverTick/2+rand.N(handoverTick))
			}
		}
	}
	if rest := s.table.Snapshot(); len(rest) > 0 { // out of time: the rest at once
		res.Closed += s.retireBatch(rest, h, reason)
		res.Batches++
	}
	err := s.retiring.wait(ctx)
	res.Took = time.Since(start)
	s.log.Info().Int("closed", res.Closed).Int("batches", res.Batches).Float64("rate", rate).Dur("took", res.Took).
		Msg("handover: connections closed")
	if err != nil {
		return res, fmt.Errorf("server: handover: %d sockets still open: %w", s.retiring.open.Load(), err)
	}
	return res, nil
}

// retireBatch takes conns off the table, each on its handler flow, lets
// Settle commit what they leave, then sends their close frames. It returns
// how many it closed.
func (s *Server) retireBatch(conns []*hub.Conn, h Handover, reason string) int {
	b := &retireBatch{}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		ran := c.Run(func() {
			defer wg.Done()
			// Counted before it is marked: its socket's close, which finds
			// it marked, counts it out.
			s.retiring.open.Add(1)
			r, ok := s.table.Retire(c)
			if !ok {
				s.retiring.open.Add(-1)
				return
			}
			s.hooks.OnClose(c, r)
			if !b.add(c) {
				// Taken off after the batch's close frames went out (its flow
				// was busy): it closes on its own.
				c.CloseLinger(hub.CloseRestart, reason, h.Linger)
			}
		})
		if !ran { // closed meanwhile: its own close took it off
			wg.Done()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(flowWait):
	}
	retired := b.seal()
	if h.Settle != nil && len(retired) > 0 {
		sctx, cancel := context.WithTimeout(context.Background(), settleWait)
		if err := h.Settle(sctx); err != nil {
			s.log.Error().Err(err).Int("connections", len(retired)).
				Msg("handover: messages stored again for closed connections are not committed yet; they are delivered once they are")
		}
		cancel()
	}
	for _, c := range retired {
		c.CloseLinger(hub.CloseRestart, reason, h.Linger)
	}
	return len(retired)
}

// retireBatch collects the connections of one batch as their flows take them
// off the table; once sealed, a late one closes itself.
type retireBatch struct {
	mu     sync.Mutex
	conns  []*hub.Conn
	sealed bool
}

func (b *retireBatch) add(c *hub.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sealed {
		return false
	}
	b.conns = append(b.conns, c)
	return true
}

func (b *retireBatch) seal() []*hub.Conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sealed = true
	return b.conns
}

// retiring counts the connections a handover took off the table whose sockets
// are not closed yet (the socket's close finds them removed: Removal.Again).
type retiring struct {
	open atomic.Int64
}

// wait returns once every retired socket is closed, or ctx ends.
func (r *retiring) wait(ctx context.Context) error {
	for r.open.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
