// Package handlers serves the client frames: it decodes each one, validates it
// and dispatches it on its flag (the list is in flags.go). The side
// API calls the same operations (Push, PushGroup, Announce, Online). A handler either
// succeeds or returns a protocol *Error, which becomes one
// {"flag":"error","code":...,"message":...} frame; the connection stays open.
package handlers

import (
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"chatserver/cluster"
	"chatserver/hub"
	"chatserver/metrics"
	"chatserver/offline"
)

// Config holds the handler settings. Zero fields take the defaults.
type Config struct {
	Node            string         // this node's id, to tell our presence entries from others'
	Limits          offline.Limits // column sizes of the offline table
	MaxAccountChars int            // when the table sets none; default 128
	MaxContentBytes int            // message content; 0 = the table's limit only
	DrainPage       int            // rows per drain query; default DefaultDrainPage
	DrainTimeout    time.Duration  // for one init's drain; default DefaultDrainTimeout
	QueryTimeout    time.Duration  // for each database step of a drain; default DefaultQueryTimeout
	DrainWorkers    int            // drains running at once; default 64

	// Broadcasters may send {"flag":"all"}; "*" lets anyone. Empty: nobody.
	Broadcasters []string
	// AnnounceToUnbound sends announcements to connections that have not
	// (or not successfully) sent init too, as the PHP server did; false: to
	// bound connections only.
	AnnounceToUnbound bool
	// BinaryAsText reads binary frames as JSON text, as the PHP server did
	// (its onMessage got both); false: they are refused with binary_frame.
	BinaryAsText bool
	// FramesPerSecond and FrameBurst limit each connection; 0 = no limit.
	FramesPerSecond, FrameBurst int
	// MaxDelayedFrames bounds the frames over the rate that wait for their
	// turn, per connection; past it the connection is closed (4029). 0: none
	// wait, frames over the rate are refused with rate_limited (rate.go).
	MaxDelayedFrames int
	// MaxDelayedBytes bounds the bytes of waiting frames, all connections
	// together; default DefaultMaxDelayedBytes.
	MaxDelayedBytes int64
	// Verifier checks init tokens; nil = auth.mode none (legacy).
	Verifier Verifier
	// MaxUnacked bounds what an acknowledging connection may leave unacked
	// (receiver acks); past it the connection is closed as too slow. Default
	// DefaultMaxUnacked.
	MaxUnacked int
	// AckMemory bounds the cids remembered for retries (sender acks), all
	// senders together. Default DefaultAckMemory.
	AckMemory int
	// ConnectionsPerAccount bounds one account's connections on this node:
	// an init past it is refused and its connection closed. 0 = no limit.
	ConnectionsPerAccount int
	// RecallWindow is how long after sending a message its sender may recall
	// or edit it (recall.go); 0: never.
	RecallWindow time.Duration
	// ConfirmTimeout is the cluster bus's (cluster.Options); default
	// cluster.DefaultConfirmTimeout. The order across nodes keeps messages
	// back from a node that may have left an older one to this node.
	ConfirmTimeout time.Duration
}

// The defaults of Config's zero fields that config.Default shares.
const (
	DefaultDrainPage    = 500
	DefaultDrainTimeout = 30 * time.Second
	DefaultQueryTimeout = 3 * time.Second
	DefaultMaxUnacked   = 1000
	DefaultAckMemory    = 1_000_000

	DefaultMaxDelayedFrames = 200
	DefaultMaxDelayedBytes  = 64 << 20
)

func (c Config) withDefaults() Config {
	if c.MaxAccountChars <= 0 {
		c.MaxAccountChars = 128
	}
	if c.Limits.AccountChars > 0 {
		c.MaxAccountChars = c.Limits.AccountChars
	}
	if c.DrainPage <= 0 {
		c.DrainPage = DefaultDrainPage
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.DrainWorkers <= 0 {
		c.DrainWorkers = 64
	}
	if c.MaxUnacked <= 0 {
		c.MaxUnacked = DefaultMaxUnacked
	}
	if c.AckMemory <= 0 {
		c.AckMemory = DefaultAckMemory
	}
	if c.MaxDelayedBytes <= 0 {
		c.MaxDelayedBytes = DefaultMaxDelayedBytes
	}
	if c.ConfirmTimeout <= 0 {
		c.ConfirmTimeout = cluster.DefaultConfirmTimeout
	}
	return c
}

// Handler serves frames for every connection of the node, and the same
// operations for the side API.
type Handler struct {
	cfg          Config
	table        *hub.Table
	queue        Queue
	backlog      Backlog
	presence     Presence
	groups       Groups
	remote       atomic.Pointer[remoteRef] // nil: one node (a successor is set during a handover, successor.go)
	history      History                   // nil: history off
	reads        Reads                     // nil: read state off (read.go)
	receipts     receipts                  // who gets read receipts, groups' counts (receipts.go)
	notifier     Notifier                  // nil: notifications off
	metrics      *metrics.Metrics
	log          zerolog.Logger
	now          func() time.Time
	started      time.Time
	broadcasters map[string]bool
	interval     int64          // rate limit: ns between frames
	delayed      delayedFrames  // frames over the rate, waiting for their turn (rate.go)
	wake         wakeups        // when they are due
	sentCIDs     *sentCIDs      // sender acks answered recently, for retries
	senderAcks   openSenderAcks // sender acks not answered yet
	marker       marker         // rows acknowledged by their receiver, to mark sent
	held         heldFrames     // frames waiting behind an init's drain
	routes       routes         // the flags and their handlers (flags.go)
	drains       *drainer
	order        crossOrder    // order to recipients on other nodes (cross_order.go)
	rowMarks     RowMarks      // with several nodes: the offline table's row ids (rejoin.go)
	marks        rowMarks      // the ids noted
	marksStopped atomic.Bool   // TrackRowMarks ended: the node is stopping
	startMark    atomic.Int64  // the offline table's highest row id at start (successor.go)
	clustered    bool          // other nodes route here through Redis (a handover's route needs no registration)
	run          string        // random per process, the prefix of generated message ids
	seq          atomic.Uint64 // generated message ids
	changes      changeState   // recall and edit: who takes the frames, what changed lately (recall.go)
}

// Deps are the handler's collaborators. Metrics may be nil.
type Deps struct {
	Table    *hub.Table
	Queue    Queue   // new messages for the offline table (offline.Writer)
	Backlog  Backlog // the offline table, for the drain (offline.Store)
	Presence Presence
	Groups   Groups
	Remote   Remote // nil: a single node
	// RowMarks (offline.Store): with Remote, what a node back from a Redis
	// outage reads again for its connections (rejoin.go); and what a process
	// that took over from another reads again once that one is done
	// (successor.go).
	RowMarks RowMarks
	// History keeps the messages accepted here (history.enabled); nil: off.
	History History
	// Reads is the read state beside the history; nil: off.
	Reads Reads
	// Notifier hears of messages stored for accounts not connected; nil: off.
	Notifier Notifier
	Metrics  *metrics.Metrics
	Log      zerolog.Logger
}

// New returns a handler over the node's connection table, the offline queue
// and backlog, the account map and the group memberships.
func New(cfg Config, d Deps) *Handler {
	cfg = cfg.withDefaults()
	h := &Handler{
		cfg: cfg, table: d.Table, queue: d.Queue, backlog: d.Backlog, presence: d.Presence, groups: d.Groups,
		rowMarks: d.RowMarks, history: d.History, reads: d.Reads, notifier: d.Notifier,
		metrics: d.Metrics, log: d.Log, now: time.Now, started: time.Now(),
		broadcasters: make(map[string]bool, len(cfg.Broadcasters)),
		sentCIDs:     newSentCIDs(cfg.AckMemory),
		senderAcks:   openSenderAcks{m: map[string]*senderAck{}},
		run:          hub.RunID(),
		routes:       newRoutes(d.Metrics),
	}
	if d.Remote != nil {
		h.remote.Store(&remoteRef{d.Remote})
		h.clustered = true
	}
	h.drains = newDrainer(cfg.DrainWorkers, h.runDrain)
	h.order.init(h)
	h.marker.h = h
	h.delayed.maxFrames, h.delayed.maxBytes, h.delayed.metrics = cfg.MaxDelayedFrames, cfg.MaxDelayedBytes, d.Metrics
	h.wake.clock, h.wake.fire = h.rateNow, h.wakeUp
	for _, a := range cfg.Broadcasters {
		h.broadcasters[a] = true
	}
	if cfg.FramesPerSecond > 0 {
		h.interval = int64(time.Second) / int64(cfg.FramesPerSecond)
	}
	return h
}

// Handle serves one message from c. nbio calls it serially per connection, which
// is what keeps each sender's messages in order. A panic is contained here: it
// costs this frame an internal error and never reaches other connections.
func (h *Handler) Handle(c *hub.Conn, text bool, data []byte) {
	defer h.contain(c, "handler panic; frame refused", nil)
	if h.interval > 0 && !h.admit(c, text, data) {
		return // waits for its turn (rate.go), or refused
	}
	h.handleFrame(c, text, data)
}

// handleFrame serves one frame the rate limit let through, on c's handler flow.
func (h *Handler) handleFrame(c *hub.Conn, text bool, data []byte) {
	if !text {
		if !h.cfg.BinaryAsText {
			h.fail(c, "", newError(CodeBinary, "binary frames are not supported; send JSON text"))
			return
		}
		if !utf8.Valid(data) { // text frames are checked by nbio; the offline table takes UTF-8 only
			h.fail(c, "", newError(CodeBadJSON, "binary frame is not UTF-8 JSON text"))
			return
		}
	}
	f, perr := Decode(data)
	if perr != nil {
		h.routes.invalid.Inc()
		h.fail(c, "", perr)
		return
	}
	if f.Flag != "ack" { // receiver acks go through: a running drain waits for them
		if held, full := h.held.hold(c, data); full {
			h.failCID(c, f.Flag, newError(CodeBusy, "too many frames sent while the offline messages load; this one was dropped, resend it"), f.CID)
			return
		} else if held {
			return
		}
	}
	h.serve(c, &f)
}

// contain, deferred, turns a panic in c's work into a logged stack and an
// internal error frame for c alone; onPanic (may be nil) puts c right first.
// It never reaches the connection's neighbours.
func (h *Handler) contain(c *hub.Conn, msg string, onPanic func()) {
	p := recover()
	if p == nil {
		return
	}
	h.log.Error().Str("conn", h.table.ConnID(c)).Str("account", c.Account()).Interface("panic", p).
		Bytes("stack", debug.Stack()).Msg(msg)
	if onPanic != nil {
		onPanic()
	}
	h.reply(c, errorPayload(newError(CodeInternal, "internal error; it has been logged"), ""))
}

// serve dispatches one decoded frame of c.
func (h *Handler) serve(c *hub.Conn, f *Frame) {
	if err := h.routes.find(f)(h, c, f); err != nil {
		e, known := asError(err)
		if !known {
			h.log.Error().Err(err).Str("conn", h.table.ConnID(c)).Str("account", c.Account()).Str("flag", f.Flag).
				Msg("frame failed")
		}
		h.failCID(c, f.Flag, e, f.CID)
	}
}

// Closed is called once when c has closed, after the transport took it off
// the table (r says what that did: what c had not acknowledged went back to
// the offline pool). The messages it had waiting for the rate limit are
// served, its frames held behind a drain are dropped and its account map
// entry removed.
func (h *Handler) Closed(c *hub.Conn, r hub.Removal) {
	h.closedWithDelayed(c)
	h.held.drop(c)
	h.receipts.forget(c)
	h.changes.dropTaker(c)
	if r.Err != nil {
		h.log.Error().Err(r.Err).Str("account", r.Account).Int("requeued", r.Requeued).
			Msg("unacknowledged messages of a closed connection could not all be stored again")
	} else if r.Requeued > 0 {
		h.log.Debug().Str("account", r.Account).Int("requeued", r.Requeued).Msg("unacknowledged messages stored again")
	}
	if r.Account != "" {
		h.presence.Unregister(r.Account, h.table.ConnID(c), r.Last)
		if r.Last && h.notifier != nil {
			h.notifier.Offline(r.Account)
		}
	}
}

func (h *Handler) fail(c *hub.Conn, flag string, e *Error) { h.failCID(c, flag, e, "") }

// failCID sends an error frame, carrying the frame's cid when it had one.
func (h *Handler) failCID(c *hub.Conn, flag string, e *Error, cid string) {
	h.metrics.Error(e.Code)
	if ev := h.log.Debug(); ev.Enabled() { // the id is built only when it is logged
		ev.Str("conn", h.table.ConnID(c)).Str("account", c.Account()).Str("flag", flag).
			Str("code", e.Code).Msg(e.Message)
	}
	h.reply(c, errorPayload(e, cid))
}

// reply sends a frame to c alone. A failed write means c is closing: nothing to do.
func (h *Handler) reply(c *hub.Conn, payload []byte) { _ = c.Send(payload) }

// bound returns c's account, or not_initialized.
func bound(c *hub.Conn) (string, *Error) {
	if a := c.Account(); a != "" {
		return a, nil
	}
	return "", newError(CodeNotInitialized, "send {\"flag\":\"init\",\"from\":...} first")
}

// requireSender checks the frame's from is the account c speaks for.
func requireSender(c *hub.Conn, f *Frame) (string, error) {
	me, e := bound(c)
	if e != nil {
		return "", e
	}
	if !f.hasFrom {
		return "", newError(CodeMissingField, "from is required")
	}
	if f.From != me {
		return "", newError(CodeWrongSender, "this connection speaks for "+quote(me)+", not "+quote(f.From))
	}
	return me, nil
}

func quote(s string) string { return string(appendString(nil, s)) }

// newID gives a message sent without a cid its id: unique across restarts (the
// random run prefix) and nodes.
func (h *Handler) newID() string {
	return h.run + strconv.FormatUint(h.seq.Add(1), 36)
}
