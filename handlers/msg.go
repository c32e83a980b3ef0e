package handlers

import (
	"errors"
	"strconv"
	"unicode/utf8"

	"chatserver/hub"
	"chatserver/offline"
)

// msg delivers a one-to-one message: pushed now to every connection of the
// recipient on this node, or stored in the offline pool for its next init.
func (h *Handler) msg(c *hub.Conn, f *Frame) error {
	from, err := requireSender(c, f)
	if err != nil {
		return err
	}
	if !f.hasTo {
		return newError(CodeMissingField, "to is required")
	}
	if !f.hasContent {
		return newError(CodeMissingField, "content is required")
	}
	if f.CID == "" { // legacy: fire and forget, nobody waits for the commit
		_, err = h.push(from, f.To, f.Content, h.newID(), nil)
		return err
	}
	id := messageID(from, f.CID)
	sa, retry := h.startSenderAck(c, from, f.CID, id)
	if retry { // acknowledged again (or when the first attempt settles), delivered once
		return nil
	}
	if _, err := h.push(from, f.To, f.Content, id, sa); err != nil {
		sa.cancel()
		return err
	}
	sa.seal()
	return nil
}

// Push delivers content from one account to another, as a msg frame does (the
// side API's /api/push), and answers as a sender ack does: pushed once on the
// recipient's live connections, stored once committed (it waits for the
// commit, up to offline.drain_timeout, then answers unavailable: the message
// stays queued). Bad input is a *Error and changes nothing.
func (h *Handler) Push(from, to, content string) (stored bool, err error) {
	sa, answer := h.newAPIAck()
	if _, err := h.push(from, to, content, h.newID(), sa); err != nil {
		sa.cancel()
		return false, err
	}
	sa.seal()
	return h.waitAPIAck(answer)
}

func (h *Handler) push(from, to, content, id string, sa *senderAck) (stored bool, err error) {
	if e := checkAccount(from, "from", h.cfg.MaxAccountChars); e != nil {
		return false, e
	}
	if e := checkAccount(to, "to", h.cfg.MaxAccountChars); e != nil {
		return false, e
	}
	if e := h.checkContent(content); e != nil {
		return false, e
	}
	now := h.now().Unix()
	r, err := h.fanout(from, content, "", id, []string{to}, now, sa)
	if err != nil {
		return false, storeError(err)
	}
	h.recordHistory(id, from, to, "", content, now)
	if r.Pushed > 0 {
		h.metrics.Pushed()
	}
	return r.Stored > 0, nil
}

func (h *Handler) checkContent(content string) *Error {
	if max := h.cfg.MaxContentBytes; max > 0 && len(content) > max {
		return newError(CodeTooLong, "content is longer than "+strconv.Itoa(max)+" bytes")
	}
	l := h.cfg.Limits
	if l.ContentBytes > 0 && len(content) > l.ContentBytes {
		return newError(CodeTooLong, "content is longer than "+strconv.Itoa(l.ContentBytes)+" bytes")
	}
	if l.ContentChars > 0 && utf8.RuneCountInString(content) > l.ContentChars {
		return newError(CodeTooLong, "content is longer than "+strconv.Itoa(l.ContentChars)+" characters")
	}
	return nil
}

// storeError maps an offline-pool failure to what the sender is told.
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, offline.ErrBusy):
		return newError(CodeBusy, "the offline store is not keeping up; the message was not sent, try again")
	case errors.Is(err, offline.ErrClosed):
		return newError(CodeUnavailable, "the server is shutting down; the message was not sent")
	default:
		return err
	}
}
