package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"chatserver/hub"
)

// settleTimeout bounds the last drain pass, which runs under the account's lock.
const settleTimeout = 5 * time.Second

// unlockedPasses is how many drain passes may race with new messages before the
// last one runs under the account's lock.
const unlockedPasses = 2

// errConnGone stops a drain whose connection closed; nothing is lost: the rows
// not pushed stay pending.
var errConnGone = errors.New("connection closed during drain")

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
	if h.cfg.Verifier != nil && c.Account() != f.From {
		token := f.Token
		if token == "" {
			token = c.URLToken()
		}
		if token == "" {
			return newError(CodeUnauthorized, "this server requires a token: send it as \"token\" in init or ?token= on the URL")
		}
		if err := h.cfg.Verifier.Verify(token, f.From); err != nil {
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
	seq, first, err := h.table.Bind(c, f.From, peer)
	var rebind *hub.ErrRebind
	if errors.As(err, &rebind) {
		return newError(CodeWrongSender, "this connection speaks for "+quote(rebind.Bound)+", not "+quote(rebind.Asked))
	}
	if err != nil {
		return fmt.Errorf("bind %q: %w", f.From, err)
	}
	if first {
		id := h.table.ConnID(c)
		h.presence.Register(f.From, id)
		h.log.Debug().Str("conn", id).Str("account", f.From).Str("remote", c.RemoteAddr()).Msg("init")
	}
	if f.Ack {
		h.table.EnableAcks(c, h.cfg.MaxUnacked)
	}
	return h.drain(c, f.From, peer, seq)
}

func (h *Handler) drain(c *hub.Conn, account, peer string, seq uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.DrainTimeout)
	defer cancel()
	// An acknowledging connection leaves its rows unmarked until acked: later
	// passes start after the last row pushed, so none is pushed twice.
	var after int64
	for pass := 0; pass < unlockedPasses; pass++ {
		if err := h.drainOnce(ctx, c, account, peer, &after); err != nil {
			return h.drainFailed(c, account, err)
		}
		next, live := h.table.GoLive(c, seq)
		if live {
			return nil
		}
		seq = next
	}
	err := h.table.Settle(c, func() error {
		sctx, scancel := context.WithTimeout(ctx, settleTimeout)
		defer scancel()
		return h.drainOnce(sctx, c, account, peer, &after)
	})
	if err != nil {
		return h.drainFailed(c, account, err)
	}
	return nil
}

// drainFailed keeps the connection usable for live chat when the backlog cannot be
// read: the rows stay pending for the next init.
func (h *Handler) drainFailed(c *hub.Conn, account string, err error) error {
	if errors.Is(err, errConnGone) {
		return nil
	}
	h.table.ForceLive(c)
	h.log.Error().Err(err).Str("conn", h.table.ConnID(c)).Str("account", account).Msg("offline drain failed")
	return newError(CodeUnavailable, "offline messages could not be loaded now; they are kept for the next init")
}

// drainOnce waits for queued offline writes, then pushes every pending row page
// by page and marks the pushed rows sent.
func (h *Handler) drainOnce(ctx context.Context, c *hub.Conn, account, peer string, resume *int64) error {
	if err := h.store.Flush(ctx); err != nil {
		return err
	}
	if has, err := h.store.HasPending(ctx, account); err != nil || !has {
		return err
	}
	var after int64
	if c.Acks() {
		after = *resume
	}
	for {
		start := time.Now()
		rows, next, more, err := h.store.Pending(ctx, account, peer, after, h.cfg.DrainPage)
		h.metrics.SQL("drain_select", time.Since(start))
		if err != nil {
			return err
		}
		ids := make([]int64, 0, len(rows))
		pushed := 0
		var sendErr error
		for _, r := range rows {
			if !c.Track(&drainedRow{id: r.MessageID(), row: r.ID}) {
				sendErr = errConnGone
				break
			}
			if sendErr = c.Send(messagePayload(r.From, r.Content, r.Group, r.MessageID())); sendErr != nil {
				break
			}
			*resume = max(*resume, r.ID)
			pushed++
			if !c.Acks() {
				ids = append(ids, r.ID)
			}
		}
		start = time.Now()
		err = h.store.MarkSent(ctx, ids)
		h.metrics.SQL("drain_mark", time.Since(start))
		if err != nil {
			// Pushed but not marked: they will be pushed again at the next init.
			h.log.Error().Err(err).Str("account", account).Int("rows", len(ids)).
				Msg("pushed offline rows could not be marked sent; they will be delivered again")
			return err
		}
		h.metrics.OfflineDrained(len(ids)) // acknowledging connections count at their ack
		h.metrics.FramesOut("offline", pushed)
		if sendErr != nil {
			return errConnGone
		}
		if !more {
			return nil
		}
		after = next
	}
}
