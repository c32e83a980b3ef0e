// Package hub owns the table of live connections on this node: which account each
// connection speaks for, whether it is still receiving its offline backlog, and the
// frames written to it. The transport (server/) and the flag handlers (handlers/)
// both use it; neither imports the other.
package hub

import (
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// Transport is what the hub needs from a WebSocket connection. server/ implements it
// on top of nbio. WriteFrame gets a complete, already framed WebSocket message and
// must write it atomically (nbio's Conn.Write is); it must not block on a slow peer.
//
// Execute runs job on the connection's handler flow, after the frames already
// waiting there and never at the same time as one of them; it returns false,
// without running job, once the connection is closed.
type Transport interface {
	WriteFrame(frame []byte) error
	Close(code int, reason string)
	RemoteAddr() string
	Execute(job func()) bool
}

// Conn is one client connection. It is kept small: a server holds hundreds of
// thousands, and every byte here is multiplied by that.
//
// Ownership of the fields:
//   - static after Table.NewConn: seq, t.
//   - account: written once by Table.Bind on the connection's own handler flow,
//     which nbio runs serially per connection; read by that flow and, under the
//     account's shard lock, by the table.
//   - guarded by the shard lock of the bound account: sibling, drain.
//   - guarded by the lock of the connection's list shard: prev, next.
//   - atomic: seen (and, in its top bits, whether the connection is bound
//     and whether it was taken off the table), expires.
//   - owned by the connection's handler flow: tat.
//   - extra: set by SetURLToken before the first frame, its unacked list once by
//     EnableReceiverAcks under the account's shard lock.
//
// 96 bytes, a size class of its own: a field more costs 16 bytes a connection.
type Conn struct {
	seq uint64 // Table.ConnID makes the id; no string kept per connection
	t   Transport

	account string

	sibling *Conn       // next connection of the same account on this node
	drain   *drainState // non-nil while the offline backlog is being pushed

	prev, next *Conn
	seen       atomic.Uint32 // last frame received, in the server's clock (seconds)
	// expires: unix seconds after which the connection is closed (its
	// token's end, auth.mode jwt); 0: never. It fills what would be padding
	// before tat, so it costs no byte.
	expires atomic.Uint32

	tat   int64      // rate limit: theoretical arrival time of the next frame (ns)
	extra *connExtra // what few connections use: nil for most
}

// connExtra holds what only some connections need, behind one pointer.
type connExtra struct {
	urlToken string   // the ?token= of the WebSocket URL (auth at init)
	unacked  *unacked // acknowledging connections: written, not yet acknowledged by the receiver
}

// drainState exists only while a connection loads its backlog (see Table.Bind).
type drainState struct {
	peer  string   // with a peer filter, messages from others go live meanwhile
	queue []queued // live frames held back until the backlog is out
	// capture is set for the drain's last pass (Table.Capture): a message that
	// would otherwise be stored (no live connection) is held in queue instead,
	// as its only copy, so that the pass reads a backlog nobody adds to.
	capture bool
	// again: the account's backlog grew where this node cannot see it (another
	// node stored a message, then asked for a drain): GoLive refuses once more,
	// so the drain runs another pass before the held frames go out.
	again bool
}

type queued struct {
	frame []byte
	item  Item
	only  bool // held by capture instead of stored: the message's only copy
}

// boundBit is kept in Conn.seen once the connection is bound to an account, so
// that a broadcast (which runs on other goroutines) can tell bound connections
// without a lock and without a field more.
const boundBit = 1 << 31

// removedBit is kept in Conn.seen once the connection was taken off the table
// (Remove or Retire), so that it is taken off once, and never bound again.
// The clock keeps the 30 bits below: 34 years of seconds.
const removedBit = 1 << 30

const flagBits = boundBit | removedBit

// Account is the account this connection was bound to by init, or "".
func (c *Conn) Account() string { return c.account }

// RemoteAddr is the client's address, for logs: the peer's, or the one a
// trusted proxy gave for it.
func (c *Conn) RemoteAddr() string { return c.t.RemoteAddr() }

// SetURLToken keeps the token given on the WebSocket URL for init. Call it
// before the connection's first frame is handled.
func (c *Conn) SetURLToken(tok string) {
	if tok != "" {
		c.extra = &connExtra{urlToken: tok}
	}
}

// URLToken is the token given on the WebSocket URL, or "".
func (c *Conn) URLToken() string {
	if c.extra == nil {
		return ""
	}
	return c.extra.urlToken
}

// unacked is what c was sent and has not acknowledged, nil unless
// EnableReceiverAcks was called.
func (c *Conn) unacked() *unacked {
	if c.extra == nil {
		return nil
	}
	return c.extra.unacked
}

// RateWait is how long (ns) c's next frame has to wait to keep to the
// per-connection rate limit (GCRA: one frame per interval on average, burst
// at once); 0: it may go now. It reserves nothing; TakeRate does. now and
// interval are nanoseconds on any monotonic clock. Only the connection's own
// handler flow calls it.
func (c *Conn) RateWait(now, interval int64, burst int) int64 {
	return max(max(c.tat, now)-now-int64(burst-1)*interval, 0)
}

// TakeRate counts one frame of c against its rate limit: the frame takes the
// next slot, whether it goes now or waits for it (see RateWait). Only the
// connection's own handler flow calls it.
func (c *Conn) TakeRate(now, interval int64) { c.tat = max(c.tat, now) + interval }

// Touch records that a frame arrived at time now (server clock, seconds),
// keeping the flag bits that other goroutines may set meanwhile.
func (c *Conn) Touch(now uint32) {
	for {
		old := c.seen.Load()
		if c.seen.CompareAndSwap(old, now&^flagBits|old&flagBits) {
			return
		}
	}
}

// SetExpiry has the connection closed with CloseExpired once t has passed
// (checked by the idle sweep, so up to a sweep period later). A later call
// replaces the time (a newer token). Times past 2106 count as never reached.
func (c *Conn) SetExpiry(t time.Time) {
	u := t.Unix()
	switch {
	case u < 1:
		u = 1
	case u > math.MaxUint32:
		u = math.MaxUint32
	}
	c.expires.Store(uint32(u))
}

// Expired reports whether the connection's expiry (SetExpiry) is at or before
// now (unix seconds).
func (c *Conn) Expired(now uint32) bool {
	e := c.expires.Load()
	return e != 0 && e <= now
}

// lastSeen is the time of the last frame (server clock, seconds).
func (c *Conn) lastSeen() uint32 { return c.seen.Load() &^ flagBits }

// bound reports whether init has bound c to an account; safe from any goroutine.
func (c *Conn) bound() bool { return c.seen.Load()&boundBit != 0 }

// markRemoved sets removedBit and reports whether this call set it.
func (c *Conn) markRemoved() bool { return c.seen.Or(removedBit)&removedBit == 0 }

// Removed reports whether the connection was taken off the table; safe from
// any goroutine.
func (c *Conn) Removed() bool { return c.seen.Load()&removedBit != 0 }

// Send writes one server-to-client JSON payload as a text frame.
func (c *Conn) Send(payload []byte) error {
	return c.WriteFrame(TextFrame(payload))
}

// WriteFrame writes a pre-framed message (see TextFrame).
func (c *Conn) WriteFrame(frame []byte) error {
	if err := c.t.WriteFrame(frame); err != nil {
		return fmt.Errorf("hub: write to the connection whose id ends -%s: %w", strconv.FormatUint(c.seq, 36), err)
	}
	return nil
}

// Run runs job on c's handler flow, after the frames already waiting there
// (see Transport.Execute); false means c is closed and job will not run.
func (c *Conn) Run(job func()) bool { return c.t.Execute(job) }

// Close closes the connection with a WebSocket close code and its reason.
func (c *Conn) Close(code CloseCode) { c.t.Close(int(code), code.Reason()) }

// CloseWith closes the connection with code and a reason text of the caller's
// (at most MaxReasonBytes); an empty reason sends the code's own.
func (c *Conn) CloseWith(code CloseCode, reason string) {
	if reason == "" {
		reason = code.Reason()
	}
	c.t.Close(int(code), reason)
}

// lingerCloser is a Transport that can send its close frame now and close the
// socket once the client answers it (or after linger), so that the frames
// the client sent before it read the close frame are still read and served.
type lingerCloser interface {
	CloseLinger(code int, reason string, linger time.Duration)
}

// CloseLinger sends the close frame with code and reason and closes the
// socket when the client answers or after linger; a transport that cannot
// wait closes at once.
func (c *Conn) CloseLinger(code CloseCode, reason string, linger time.Duration) {
	if reason == "" {
		reason = code.Reason()
	}
	if l, ok := c.t.(lingerCloser); ok {
		l.CloseLinger(int(code), reason, linger)
		return
	}
	c.t.Close(int(code), reason)
}

// acceptsLive reports whether a message from sender may be pushed to c now, or
// must wait until c's backlog has drained. Caller holds the account's shard lock.
func (c *Conn) acceptsLive(sender string) bool {
	return c.drain == nil || (c.drain.peer != "" && c.drain.peer != sender)
}
