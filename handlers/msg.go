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
	if e := checkAccount(f.To, "to", h.cfg.MaxAccountChars); e != nil {
		return e
	}
	if e := h.checkContent(f); e != nil {
		return e
	}
	frame := hub.TextFrame(pushPayload(from, f.Content))
	m := offline.Message{To: f.To, From: from, Content: f.Content, AddTime: h.now().Unix()}
	_, err = h.table.Deliver(f.To, from, frame, func() error { return h.store.Enqueue(m) })
	return storeError(err)
}

func (h *Handler) checkContent(f *Frame) *Error {
	if !f.hasContent {
		return newError(CodeMissingField, "content is required")
	}
	l := h.cfg.Limits
	if l.ContentBytes > 0 && len(f.Content) > l.ContentBytes {
		return newError(CodeTooLong, "content is longer than "+strconv.Itoa(l.ContentBytes)+" bytes")
	}
	if l.ContentChars > 0 && utf8.RuneCountInString(f.Content) > l.ContentChars {
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
