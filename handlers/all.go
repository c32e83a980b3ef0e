package handlers

import (
	"context"
	"time"

	"chatserver/cluster"
	"chatserver/hub"
)

// all pushes an announcement to every connection on the node, encoded once.
// Only the accounts in Config.Broadcasters may send it ("*": anyone).
func (h *Handler) all(c *hub.Conn, f *Frame) error {
	from, err := requireSender(c, f)
	if err != nil {
		return err
	}
	if !f.hasContent {
		return newError(CodeMissingField, "content is required")
	}
	if !h.broadcasters["*"] && !h.broadcasters[from] {
		return newError(CodeForbidden, quote(from)+" may not broadcast to the whole site")
	}
	_, err = h.Announce(from, f.Content)
	return err
}

// Announce writes an announcement from `from` to every connection on the node
// and returns how many it reached (the side API's /api/broadcast).
func (h *Handler) Announce(from, content string) (int, error) {
	if e := checkAccount(from, "from", h.cfg.MaxAccountChars); e != nil {
		return 0, e
	}
	if e := h.checkContent(content); e != nil {
		return 0, e
	}
	start := time.Now()
	n := h.table.Broadcast(hub.TextFrame(announcePayload(from, content)), h.cfg.AnnounceToUnbound)
	took := time.Since(start)
	if remote := h.remoteNow(); remote != nil {
		ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
		defer cancel()
		if err := remote.Broadcast(ctx, cluster.Envelope{Kind: "all", From: from, Content: content}); err != nil {
			h.log.Error().Err(err).Msg("announcement not sent to the other nodes")
		}
	}
	h.metrics.Fanout(took)
	h.metrics.FramesOut("all", n)
	h.log.Info().Str("account", from).Int("connections", n).Dur("took", took).Msg("announcement")
	return n, nil
}
