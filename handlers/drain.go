package handlers

import (
	"context"
	"errors"
	"time"

	"chatserver/hub"
	"chatserver/offline"
)

// unlockedPasses is how many drain passes may race with new messages before
// the last one runs with the account's new messages held for the connection
// (hub.Table.Capture).
const unlockedPasses = 2

// errConnGone stops a drain whose connection closed; nothing is lost: the rows
// not pushed stay pending.
var errConnGone = errors.New("connection closed during drain")

// errBacklogSpooled fails a drain while some of the account's messages wait in
// the spool for MySQL: they come at an init once they reached it.
var errBacklogSpooled = errors.New("offline messages wait in the spool for MySQL")

// runDrain drains one init's backlog, then serves the frames the connection
// sent meanwhile (drain_held.go). A panic is contained as in Handle: it is logged and
// the connection goes live.
func (h *Handler) runDrain(j drainJob) {
	func() {
		defer h.contain(j.c, "drain panic", func() { h.table.ForceLive(j.c) })
		h.drain(j)
	}()
	over := true
	for {
		data, ok := h.held.next(j.c, over)
		if !ok {
			return // none left, or a held init started the next drain
		}
		over = false
		h.serveHeld(j.c, data)
	}
}

func (h *Handler) serveHeld(c *hub.Conn, data []byte) {
	defer h.contain(c, "handler panic; frame refused", nil)
	f, perr := Decode(data) // decoded once already: cannot fail
	if perr != nil {
		h.fail(c, "", perr)
		return
	}
	h.serve(c, &f)
}

// awaitRegistration waits (briefly) until this node's account-map writes are
// in Redis, when other nodes route to it: a node that stores a message for an
// account it finds nowhere relies on the account's drain reading the backlog
// after its registration is visible (crossOrder).
func (h *Handler) awaitRegistration() {
	s, ok := h.presence.(interface{ Sync(context.Context) error })
	if !h.clustered || !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.Sync(ctx) // Redis slow or away: the drain goes on; messages stored then are stored, not lost
}

// drain pushes the connection's pending offline messages (all of them, or only
// those from peer), oldest first, marking exactly the rows pushed as sent (an
// acknowledging connection: when acknowledged). Live messages that arrive
// meanwhile wait behind the backlog, or go to the pool and are picked up by a
// later pass, so that every message arrives once and in order. The last pass
// runs with new messages held for the connection instead of stored, so it
// reads a backlog nothing is added to, without a lock held across the reads.
func (h *Handler) drain(j drainJob) {
	c, account, peer, seq := j.c, j.account, j.peer, j.seq
	start := time.Now()
	h.awaitRegistration()
	// An acknowledging connection leaves its rows unmarked until acked: later
	// passes start after the last row pushed, so none is pushed twice.
	var after int64
	for pass := 1; ; pass++ {
		if time.Since(start) > h.cfg.DrainTimeout {
			h.drainFailed(c, account, errors.New("drain did not settle within offline.drain_timeout"))
			return
		}
		if err := h.drainOnce(c, account, peer, &after); err != nil {
			h.drainFailed(c, account, err)
			return
		}
		next, live := h.table.GoLive(c, seq)
		if live {
			return
		}
		seq = next
		if pass >= unlockedPasses {
			s, ok := h.table.Capture(c)
			if !ok {
				return
			}
			seq = s
		}
	}
}

// drainFailed keeps the connection usable for live chat when the backlog cannot be
// read: the rows stay pending for the next init.
func (h *Handler) drainFailed(c *hub.Conn, account string, err error) {
	if errors.Is(err, errConnGone) {
		return
	}
	h.table.ForceLive(c)
	h.log.Error().Err(err).Str("conn", h.table.ConnID(c)).Str("account", account).Msg("offline drain failed")
	h.fail(c, "init", newError(CodeUnavailable, "offline messages could not be loaded now; they are kept for the next init"))
}

// drainOnce waits for queued offline writes, then pushes every pending row page
// by page and marks the pushed rows sent. Every database step has its own
// deadline (offline.query_timeout), so a database that hangs fails the drain
// soon instead of holding the connection's backlog for long.
func (h *Handler) drainOnce(c *hub.Conn, account, peer string, resume *int64) error {
	if err := h.query(func(ctx context.Context) error { return h.queue.Flush(ctx) }); err != nil {
		return err
	}
	// Rows in the spool are newer than those in the table and cannot be read
	// with them: going live now would push newer messages first. Checked
	// before the table is read: rows leave the spool only towards the table,
	// and new ones for the account come through the table's sequence.
	var spooled bool
	if err := h.query(func(ctx context.Context) (err error) {
		spooled, err = h.queue.SpoolHolds(ctx, account)
		return err
	}); err != nil {
		return err
	}
	if spooled {
		return errBacklogSpooled
	}
	var has bool
	if err := h.query(func(ctx context.Context) (err error) {
		has, err = h.backlog.HasPending(ctx, account)
		return err
	}); err != nil || !has {
		return err
	}
	var after int64
	if c.ReceiverAcks() {
		after = *resume
	}
	window := max(1, h.cfg.MaxUnacked/2)
	for {
		start := time.Now()
		var rows []offline.Row
		var next int64
		var more bool
		err := h.query(func(ctx context.Context) (err error) {
			rows, next, more, err = h.backlog.Pending(ctx, account, peer, after, h.cfg.DrainPage)
			return err
		})
		h.metrics.SQL("drain_select", time.Since(start))
		if err != nil {
			return err
		}
		ids := make([]int64, 0, len(rows))
		pushed := 0
		var sendErr error
		for _, r := range rows {
			// An acknowledging connection gets its backlog in windows it can
			// acknowledge (half of limits.max_unacked, leaving room for live
			// messages), then live chat.
			if !h.waitWindow(c, window) {
				sendErr = errConnGone
				break
			}
			if !c.Track(&drainedRow{id: r.MessageID(), row: r.ID}) {
				sendErr = errConnGone
				break
			}
			if sendErr = c.Send(messagePayload(r.From, r.Content, r.Group, r.MessageID())); sendErr != nil {
				break
			}
			*resume = max(*resume, r.ID)
			pushed++
			if !c.ReceiverAcks() {
				ids = append(ids, r.ID)
			}
		}
		start = time.Now()
		err = h.query(func(ctx context.Context) error { return h.backlog.MarkSent(ctx, ids) })
		h.metrics.SQL("drain_mark", time.Since(start))
		if err != nil {
			// Pushed but not marked: they will be pushed again at the next init.
			h.log.Error().Err(err).Str("account", account).Int("rows", len(ids)).
				Msg("pushed offline rows could not be marked sent; they will be delivered again")
			return err
		}
		h.metrics.OfflineDrained(len(ids)) // acknowledging connections count at their receiver ack
		h.metrics.FramesOut("offline", pushed)
		if sendErr != nil {
			return errConnGone
		}
		if !more {
			if !h.waitWindow(c, window) { // room for what was held back meanwhile
				return errConnGone
			}
			return nil
		}
		after = next
	}
}

// waitWindow waits, at most offline.drain_timeout, until c has fewer than n
// messages unacknowledged. A client that acknowledges nothing for that long is
// closed as too slow; its rows stay pending.
func (h *Handler) waitWindow(c *hub.Conn, n int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.DrainTimeout)
	defer cancel()
	if c.WaitWindow(ctx, n) {
		return true
	}
	if ctx.Err() != nil {
		c.Close(hub.CloseUnacked)
	}
	return false
}

// query runs one database step of a drain under its own deadline.
func (h *Handler) query(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	return fn(ctx)
}
