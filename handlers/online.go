package handlers

import (
	"context"
	"time"

	"chatserver/hub"
)

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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	on, err := h.Online(ctx, f.To)
	if err != nil {
		return err
	}
	h.reply(c, onlinePayload(f.To, on))
	return nil
}

// Online reports whether account is connected on this node or another one.
func (h *Handler) Online(ctx context.Context, account string) (bool, error) {
	if h.table.Online(account) {
		return true, nil
	}
	if remote := h.remoteNow(); remote != nil {
		// Only live nodes count: the entries of a node that died stay in the
		// map until its liveness key expires.
		locate := remote.Locate
		if x, ok := remote.(exactLocator); ok {
			locate = x.LocateExact
		}
		where, err := locate(ctx, []string{account})
		if err != nil {
			h.log.Warn().Err(err).Str("account", account).Msg("online: account map unreachable; answering from this node")
			return false, nil
		}
		return len(where[account]) > 0, nil
	}
	entries, err := h.presence.Lookup(ctx, account)
	if err != nil {
		// The shared map is unreachable: answer from this node, which is all
		// a single node needs, and say so in the log.
		h.log.Warn().Err(err).Str("account", account).Msg("online: account map unreachable; answering from this node")
		return false, nil
	}
	for _, e := range entries {
		// Our own entries are authoritative in the table; one that is not
		// there is stale.
		if e.Node != h.cfg.Node {
			return true, nil
		}
	}
	return false, nil
}
