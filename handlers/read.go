package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"chatserver/history"
	"chatserver/hub"
)

// Reads is the read state beside the history (history.Reads): a cursor per
// account and conversation, moved forward by read frames, the unread counts
// taken from it, and each account's conversations. nil in Deps: off (history
// off), and the read, unread and conversations flags say so.
type Reads interface {
	// FindFor returns message id of conv and reader's cursor there (moves
	// still queued included), or history.ErrUnknownMessage.
	FindFor(ctx context.Context, reader, conv, id string) (seq int64, from string, cur history.Cursor, err error)
	// Queue moves a cursor (forward only) in the next batch; FlushCursors
	// waits for the moves queued so far.
	Queue(m history.CursorMove)
	FlushCursors(ctx context.Context) error
	Unread(ctx context.Context, account, conv string) (int, history.Cursor, error)
	Readers(ctx context.Context, conv string, seq int64, author string) (int, error)
	Last(ctx context.Context, conv string) (history.Entry, bool, error)
	Conversations(ctx context.Context, account string) ([]history.Conversation, error)
	// Flush waits until what this node accepted so far is in the history
	// (its writer batches): a message just delivered may not be written yet.
	Flush(ctx context.Context) error
}

// ReadRequest moves Reader's cursor in a conversation to message ID.
type ReadRequest struct {
	Reader string
	To     string // the other party of a one-to-one conversation, or ""
	Group  string // the group, or ""
	ID     string // the newest message read
}

// lateWrite is how long a read frame waits, once, for a message that is not
// in the history yet: another node's writer (or, during a handover, the other
// process's) may still hold it, or this node may not have recorded it yet (a
// message is recorded once its delivery was decided, so its receiver can
// read it a moment before). After the wait this node's writers are flushed
// again. At most maxLateWaits frames wait at once, so
// that frames with made-up ids cannot hold the handler pool; the others are
// answered not_found at once.
const (
	lateWrite    = 300 * time.Millisecond
	maxLateWaits = 64
)

// readFrame serves {"flag":"read","to"|"group","id"}: the reader's cursor
// moves to id, the reader hears {"flag":"read",...,"ok":true}, and the peer's
// connections (and the reader's other ones) a receipt.
func (h *Handler) readFrame(c *hub.Conn, f *Frame) error {
	reader, e := bound(c)
	if e != nil {
		return e
	}
	h.receipts.want(c)
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	r := ReadRequest{Reader: reader, To: f.To, Group: f.Group, ID: f.ID}
	moved, author, seq, err := h.Read(ctx, r)
	if err != nil {
		return err
	}
	h.reply(c, readPayload("", r.To, r.Group, r.ID, -1, true))
	if !moved {
		return nil
	}
	if r.Group != "" {
		h.receipts.sendTo(h, []string{reader}, c, readPayload(reader, "", r.Group, r.ID, -1, false))
		h.receipts.groupRead(h, r.Group, author, seq, r.ID)
		return nil
	}
	h.receipts.sendTo(h, []string{r.To, reader}, c, readPayload(reader, r.To, "", r.ID, -1, false))
	return nil
}

// Read moves r.Reader's cursor to message r.ID of its conversation with r.To
// or of group r.Group (a member's only), forward only. It returns whether the
// cursor moved, and the message's sender and seq. Moving it to where it is
// changes nothing and is no error; moving it back is refused.
func (h *Handler) Read(ctx context.Context, r ReadRequest) (moved bool, author string, seq int64, err error) {
	conv, e := h.readConv(ctx, r.Reader, r.To, r.Group, true)
	if e != nil {
		return false, "", 0, e
	}
	switch {
	case r.ID == "":
		return false, "", 0, newError(CodeMissingField, "id (the newest message read) is required")
	case len(r.ID) > 64:
		return false, "", 0, newError(CodeBadField, "id must be a message id")
	}
	seq, author, cur, err := h.findMessage(ctx, r.Reader, conv, r.ID)
	switch {
	case err != nil:
		return false, "", 0, err
	case seq < cur.Seq:
		return false, "", 0, newError(CodeBadField, "the cursor is already past "+quote(r.ID)+" (at "+quote(cur.ID)+"); it only moves forward")
	case seq == cur.Seq:
		return false, author, seq, nil
	}
	h.reads.Queue(history.CursorMove{Account: r.Reader, Conv: conv, Seq: seq, ID: r.ID, Time: h.now().Unix()})
	return true, author, seq, nil
}

// findMessage returns the seq and sender of message id in conv, and
// reader's cursor there. A message accepted a moment ago may still wait in a
// history writer: this node's is flushed, another node's is given lateWrite,
// before the id is refused.
func (h *Handler) findMessage(ctx context.Context, reader, conv, id string) (int64, string, history.Cursor, error) {
	var none history.Cursor
	for attempt := 0; ; attempt++ {
		start := time.Now()
		seq, from, cur, err := h.reads.FindFor(ctx, reader, conv, id)
		h.metrics.SQL("read_find", time.Since(start))
		switch {
		case err == nil:
			return seq, from, cur, nil
		case !errors.Is(err, history.ErrUnknownMessage):
			h.log.Error().Err(err).Str("conv", conv).Msg("read: message not looked up")
			return 0, "", none, newError(CodeUnavailable, "the read state cannot be read right now; try again")
		case attempt == 0:
			if err := h.reads.Flush(ctx); err != nil {
				return 0, "", none, newError(CodeUnavailable, "the history is not written yet; try again")
			}
		case attempt == 1 && h.receipts.lateWait.tryAcquire():
			t := time.NewTimer(lateWrite)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			h.receipts.lateWait.release()
			if err := h.reads.Flush(ctx); err != nil {
				return 0, "", none, newError(CodeUnavailable, "the history is not written yet; try again")
			}
		default:
			return 0, "", none, newError(CodeNotFound, "id "+quote(id)+" is not a message of this conversation")
		}
	}
}

// readConv checks a conversation named by with (the other party) or group
// for reader, a member of group, and returns its key. need says one of them
// is required.
func (h *Handler) readConv(ctx context.Context, reader, with, group string, need bool) (string, *Error) {
	if h.reads == nil {
		return "", newError(CodeUnavailable, "read state is not enabled on this server (history.enabled)")
	}
	if e := checkAccount(reader, "account", h.cfg.MaxAccountChars); e != nil {
		return "", e
	}
	switch {
	case with != "" && group != "":
		return "", newError(CodeBadField, "give to or group, not both")
	case with == "" && group == "":
		if need {
			return "", newError(CodeMissingField, "to (an account) or group is required")
		}
		return "", nil
	case group != "":
		if e := checkAccount(group, "group", 64); e != nil {
			return "", e
		}
		set, err := h.groups.Get(ctx, group)
		if err != nil {
			h.log.Error().Err(err).Str("group", group).Msg("read: group members not read")
			return "", newError(CodeUnavailable, "group members cannot be read right now; try again")
		}
		if !set.Has(reader) {
			return "", newError(CodeForbidden, "you are not a member of group "+quote(group))
		}
		return history.GroupConv(group), nil
	default:
		if e := checkAccount(with, "to", h.cfg.MaxAccountChars); e != nil {
			return "", e
		}
		return history.PairConv(reader, with), nil
	}
}

// readPayload is a read frame: from (who read; "" in the reader's own answer),
// to or group, id, count (readers of a group message; -1: none) and ok (the
// reader's answer).
func readPayload(from, to, group, id string, count int, ok bool) []byte {
	m := struct {
		Flag  string `json:"flag"`
		From  string `json:"from,omitempty"`
		To    string `json:"to,omitempty"`
		Group string `json:"group,omitempty"`
		ID    string `json:"id"`
		Count *int   `json:"count,omitempty"`
		OK    bool   `json:"ok,omitempty"`
	}{Flag: "read", From: from, To: to, Group: group, ID: id, OK: ok}
	if count >= 0 {
		m.Count = &count
	}
	b, _ := json.Marshal(m) // strings and numbers only: cannot fail
	return b
}
