package handlers

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"chatserver/hub"
)

// init binds the connection to an account and pushes its pending offline
// messages (all of them, or only those from `to`), oldest first, marking exactly
// the rows pushed as sent. Live messages that arrive meanwhile wait behind the
// backlog, or go to the pool and are picked up by the drain, so that every
// message arrives once and in order.
func (h *Handler) init(c *hub.Conn, f *Frame) error {
	if !f.hasFrom {
		return newError(CodeMissingField, "from is required")
	}
	if e := checkAccount(f.From, "from", h.cfg.MaxAccountChars); e != nil {
		return e
	}
	var until time.Time // the token's end; zero: no token checked
	if h.cfg.Verifier != nil && c.Account() != f.From {
		token := f.Token
		if token == "" {
			token = c.URLToken()
		}
		if token == "" {
			return newError(CodeUnauthorized, "this server requires a token: send it as \"token\" in init or ?token= on the URL")
		}
		var err error
		if until, err = h.cfg.Verifier.Verify(token, f.From); err != nil {
			return newError(CodeUnauthorized, "token refused: "+err.Error())
		}
	}
	peer := ""
	if f.hasTo && f.To != "" {
		if e := checkAccount(f.To, "to", h.cfg.MaxAccountChars); e != nil {
			return e
		}
		peer = f.To
	}
	seq, first, start, err := h.table.Bind(c, f.From, peer, h.cfg.ConnectionsPerAccount)
	var rebind *hub.ErrRebind
	if errors.As(err, &rebind) {
		return newError(CodeWrongSender, "this connection speaks for "+quote(rebind.Bound)+", not "+quote(rebind.Asked))
	}
	var full *hub.ErrAccountFull
	if errors.As(err, &full) {
		// Refused, not the oldest closed: what a user sees stays where it was,
		// and a client stuck reconnecting cannot push out the working ones.
		h.failCID(c, f.Flag, newError(CodeTooManyConns, quote(full.Account)+" already has "+strconv.Itoa(full.Limit)+
			" connections on this server; close one (another tab or device) and connect again"), f.CID)
		c.Close(hub.CloseAccountFull)
		return nil
	}
	if errors.Is(err, hub.ErrRemoved) {
		// The connection is closing (handed over): this init was sent
		// before the client knew; it inits again on its next connection.
		return nil
	}
	if err != nil {
		return fmt.Errorf("bind %q: %w", f.From, err)
	}
	if first {
		if !until.IsZero() {
			c.SetExpiry(until) // closed with 4003 after it, unless an auth frame renews it
		}
		id := h.table.ConnID(c)
		h.presence.Register(f.From, id)
		if h.notifier != nil {
			h.notifier.Online(f.From)
		}
		h.log.Debug().Str("conn", id).Str("account", f.From).Str("remote", c.RemoteAddr()).Msg("init")
	}
	if f.ReceiverAcks {
		h.table.EnableReceiverAcks(c, h.cfg.MaxUnacked)
	}
	if start {
		// The backlog is read off the connection's handler flow: its pings,
		// receiver acks and messages are served while the database answers
		// (or not).
		h.held.start(c)
		h.drains.submit(drainJob{c: c, account: f.From, peer: peer, seq: seq})
	}
	h.initChanges(c, f)
	return nil
}
