package handlers

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"

	"chatserver/hub"
)

// The frame rate limit (limits.frames_per_second, limits.frame_burst). A frame
// over the rate is not refused: it waits for its turn in its connection's
// queue, and every frame the connection sends meanwhile waits behind it, so
// the connection's frames are served in the order they came, at the rate, and
// none is lost. A legacy client that sends faster than the rate (it never
// reads error frames) sees its messages slowed down, not dropped.
//
// nbio gives no way to stop reading one connection (its event loops read
// every readable socket), so TCP cannot push back on the client: the waiting
// frames are held here instead, bounded per connection
// (limits.max_delayed_frames) and for all connections together
// (limits.max_delayed_bytes). A connection that goes past a bound is closed
// with 4029 (hub.CloseTooFast) and the frames it still had waiting are
// dropped: that client floods. One runtime timer for all connections
// (wakeups.go) releases the frames, on the connection's own handler flow.
//
// Two exceptions answer rate_limited at once, as before, and keep nothing: a
// frame that carries a cid (its client resends what is refused, and a late
// ack would only make it resend sooner), and every frame when
// limits.max_delayed_frames is 0.

// rateNow is the rate limit's clock: ns since the handler was made, monotonic.
func (h *Handler) rateNow() int64 { return int64(time.Since(h.started)) }

// admit applies the rate limit to one frame of c and says whether it may be
// served now. Otherwise the frame waits in c's queue (release serves it),
// or was refused with rate_limited, or c was closed for passing the bound.
// It runs on c's handler flow.
func (h *Handler) admit(c *hub.Conn, text bool, data []byte) bool {
	now := h.rateNow()
	wait := c.RateWait(now, h.interval, h.cfg.FrameBurst)
	q := h.delayed.get(c)
	if q == nil && wait == 0 {
		c.TakeRate(now, h.interval)
		return true
	}
	if q != nil && q.closed {
		return false // closed for flooding: what it sent after is dropped
	}
	if wait > 0 {
		flag, cid := "", ""
		if (text || h.cfg.BinaryAsText) && bytes.Contains(data, []byte(`"cid"`)) {
			if f, err := Decode(data); err == nil {
				flag, cid = f.Flag, f.CID
			}
		}
		if cid != "" || h.cfg.MaxDelayedFrames == 0 {
			h.failCID(c, flag, newError(CodeRateLimited, "more than "+strconv.Itoa(h.cfg.FramesPerSecond)+
				" frames per second; this frame was dropped, slow down"), cid)
			return false
		}
	}
	c.TakeRate(now, h.interval)
	if q == nil {
		q = h.delayed.create(c)
	}
	due := now + wait
	if n := len(q.frames); n > 0 {
		due = max(due, q.frames[n-1].due) // behind the others, even if its own slot came (a late wakeup)
	}
	if !h.delayed.push(q, delayedFrame{data: append([]byte(nil), data...), due: due, text: text}) {
		h.tooFast(c, q)
		return false
	}
	if !q.armed {
		q.armed = true
		h.wake.at(c, due)
	}
	return false
}

// wakeUp is the wakeups' callback: it has c's handler flow run release. A
// closed connection's job is refused, and Closed has dealt with its frames.
func (h *Handler) wakeUp(c *hub.Conn) { c.Run(func() { h.release(c) }) }

// release serves c's frames whose turn has come, in the order they came, and
// asks for a wakeup at the next one's turn. It runs on c's handler flow.
func (h *Handler) release(c *hub.Conn) {
	q := h.delayed.get(c)
	if q == nil || q.closed {
		return
	}
	q.armed = false
	for {
		f, ok := h.delayed.pop(q, h.rateNow()+wakeSlack)
		if !ok {
			break
		}
		h.serveDelayed(c, f)
	}
	if len(q.frames) == 0 {
		h.delayed.remove(c)
		return
	}
	q.armed = true
	h.wake.at(c, q.frames[0].due)
}

func (h *Handler) serveDelayed(c *hub.Conn, f delayedFrame) {
	defer h.contain(c, "handler panic; frame refused", nil)
	h.handleFrame(c, f.text, f.data)
}

// tooFast closes c, whose frames waiting for the rate limit would pass a
// bound; they are dropped, and so is what c sent after (q stays, closed,
// until Closed removes it).
func (h *Handler) tooFast(c *hub.Conn, q *delayedQueue) {
	dropped := len(q.frames)
	h.delayed.drop(q)
	h.metrics.ClosedTooFast()
	if ev := h.log.Debug(); ev.Enabled() {
		ev.Str("conn", h.table.ConnID(c)).Str("account", c.Account()).Int("dropped", dropped).
			Msg("too many frames waiting for the rate limit; connection closed")
	}
	c.Close(hub.CloseTooFast)
}

// dropDelayed drops c's frames waiting for the rate limit, and what it sends
// until it is closed; it runs on c's flow.
func (h *Handler) dropDelayed(c *hub.Conn) {
	if q := h.delayed.get(c); q != nil {
		h.delayed.drop(q)
	}
}

// closedWithDelayed serves, when c has closed, the messages it sent that were
// still waiting for the rate limit (msg, group and all: what reaches others;
// the rest would only answer a connection that is gone), so that a client
// that sends a burst and disconnects loses none of it. Nothing is served for
// a connection closed for flooding, or cut off by the site (dropDelayed).
func (h *Handler) closedWithDelayed(c *hub.Conn) {
	q := h.delayed.remove(c)
	if q == nil || q.closed {
		return
	}
	for _, d := range q.frames {
		h.serveAtClose(c, d)
	}
}

func (h *Handler) serveAtClose(c *hub.Conn, d delayedFrame) {
	defer h.contain(c, "handler panic; frame refused", nil)
	if !d.text && (!h.cfg.BinaryAsText || !utf8.Valid(d.data)) {
		return
	}
	f, perr := Decode(d.data)
	if perr != nil {
		return
	}
	switch f.Flag {
	case "msg", "group", "all":
		h.serve(c, &f)
	}
}
