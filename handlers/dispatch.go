// Package handlers serves the client frames: it decodes each one, validates it
// and dispatches it on its flag (init, msg, all, online, ping). A handler either
// succeeds or returns a protocol *Error, which becomes one
// {"flag":"error","code":...,"message":...} frame; the connection stays open.
package handlers

import (
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"chatserver/hub"
	"chatserver/offline"
)

// Config holds the handler settings. Zero fields take the defaults.
type Config struct {
	Node            string         // this node's id, to tell our presence entries from others'
	Limits          offline.Limits // column sizes of the offline table
	MaxAccountChars int            // when the table sets none; default 128
	DrainPage       int            // rows per drain query; default 500
	DrainTimeout    time.Duration  // for one init's drain; default 30s
}

func (c Config) withDefaults() Config {
	if c.MaxAccountChars <= 0 {
		c.MaxAccountChars = 128
	}
	if c.Limits.AccountChars > 0 {
		c.MaxAccountChars = c.Limits.AccountChars
	}
	if c.DrainPage <= 0 {
		c.DrainPage = 500
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	return c
}

// Handler serves frames for every connection of the node.
type Handler struct {
	cfg      Config
	table    *hub.Table
	store    Store
	presence Presence
	log      zerolog.Logger
	now      func() time.Time
}

// New returns a handler over the node's connection table, the offline pool and
// the account map.
func New(cfg Config, table *hub.Table, store Store, p Presence, log zerolog.Logger) *Handler {
	return &Handler{cfg: cfg.withDefaults(), table: table, store: store, presence: p, log: log, now: time.Now}
}

// Handle serves one message from c. nbio calls it serially per connection, which
// is what keeps each sender's messages in order. A panic is contained here: it
// costs this frame an internal error and never reaches other connections.
func (h *Handler) Handle(c *hub.Conn, text bool, data []byte) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error().Str("conn", c.ID()).Str("account", c.Account()).Interface("panic", p).
				Bytes("stack", debug.Stack()).Msg("handler panic; frame refused")
			h.reply(c, errorPayload(newError(CodeInternal, "internal error; it has been logged")))
		}
	}()
	if !text {
		h.fail(c, "", newError(CodeBinary, "binary frames are not supported; send JSON text"))
		return
	}
	f, perr := Decode(data)
	if perr != nil {
		h.fail(c, "", perr)
		return
	}
	if err := h.dispatch(c, &f); err != nil {
		e, known := asError(err)
		if !known {
			h.log.Error().Err(err).Str("conn", c.ID()).Str("account", c.Account()).Str("flag", f.Flag).
				Msg("frame failed")
		}
		h.fail(c, f.Flag, e)
	}
}

func (h *Handler) dispatch(c *hub.Conn, f *Frame) error {
	switch f.Flag {
	case "init":
		return h.init(c, f)
	case "msg":
		return h.msg(c, f)
	case "all":
		return h.all(c, f)
	case "online":
		return h.online(c, f)
	case "ping", "":
		h.reply(c, pongPayload(f.Heart))
		return nil
	case "pong":
		return nil // a client answering a ping of ours, or echoing: nothing to do
	case "group":
		return newError(CodeNotSupported, "group messages are not enabled on this server yet")
	default:
		return newError(CodeUnknownFlag, "unknown flag "+quote(f.Flag)+"; known: init, msg, all, online, ping")
	}
}

// Closed is called once when c has closed.
func (h *Handler) Closed(c *hub.Conn) {
	account, last := h.table.Remove(c)
	if account != "" {
		h.presence.Unregister(account, c.ID(), last)
	}
}

func (h *Handler) fail(c *hub.Conn, flag string, e *Error) {
	h.log.Debug().Str("conn", c.ID()).Str("account", c.Account()).Str("flag", flag).
		Str("code", e.Code).Msg(e.Message)
	h.reply(c, errorPayload(e))
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
