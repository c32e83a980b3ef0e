package handlers

import (
	"context"
	"time"

	"chatserver/hub"
)

// all pushes an announcement to every connection on the node, encoded once.
func (h *Handler) all(c *hub.Conn, f *Frame) error {
	from, err := requireSender(c, f)
	if err != nil {
		return err
	}
	if !f.hasContent {
		return newError(CodeMissingField, "content is required")
	}
	start := time.Now()
	n := h.table.Broadcast(hub.TextFrame(announcePayload(from, f.Content)))
	h.log.Info().Str("account", from).Int("connections", n).Dur("took", time.Since(start)).Msg("announcement")
	return nil
}

// online answers whether an account is connected here or on another node.
func (h *Handler) online(c *hub.Conn, f *Frame) error {
	if _, e := bound(c); e != nil {
		return e
	}
	if !f.hasTo {
		return newError(CodeMissingField, "to is required")
	}
	if e := checkAccount(f.To, "to", h.cfg.MaxAccountChars); e != nil {
		return e
	}
	on := h.table.Online(f.To)
	if !on {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		entries, err := h.presence.Lookup(ctx, f.To)
		if err != nil {
			return err
		}
		for _, e := range entries {
			// Our own entries are authoritative in the table; one that is not
			// there is stale.
			if e.Node != h.cfg.Node {
				on = true
				break
			}
		}
	}
	h.reply(c, onlinePayload(f.To, on))
	return nil
}
