package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"chatserver/history"
	"chatserver/hub"
)

// History is the conversation history (history.Writer and history.Store):
// Record keeps an accepted message (never blocks), Page reads a conversation
// back. nil in Deps: history is off and the history flag says so.
type History interface {
	Record(e history.Entry)
	Page(ctx context.Context, conv, before string, limit int) ([]history.Entry, bool, error)
}

// The page sizes of a history request.
const (
	DefaultHistoryPage = 50
	MaxHistoryPage     = 200
)

// HistoryRequest asks for one page of a conversation, as Reader sees it.
type HistoryRequest struct {
	Reader string // the account asking: one of the two parties, or a member
	With   string // the other party of a one-to-one conversation, or ""
	Group  string // the group, or ""
	Before string // the id of the message to page back from; "": the newest
	Limit  int    // 0: DefaultHistoryPage
}

// HistoryMessage is one message of a page, as clients see it.
type HistoryMessage struct {
	ID      string `json:"id"`
	Seq     int64  `json:"seq"`
	From    string `json:"from"`
	To      string `json:"to,omitempty"`
	Group   string `json:"group,omitempty"`
	Content string `json:"content"`
	Time    int64  `json:"time"`
	// Recalled: its sender took it back (content is ""); Edited: when its
	// sender last replaced the content (unix seconds). Absent otherwise.
	Recalled bool  `json:"recalled,omitempty"`
	Edited   int64 `json:"edited,omitempty"`
}

// HistoryPage is a page of a conversation, oldest first.
type HistoryPage struct {
	Flag     string           `json:"flag,omitempty"`
	With     string           `json:"with,omitempty"`
	Group    string           `json:"group,omitempty"`
	Messages []HistoryMessage `json:"messages"`
	More     bool             `json:"more"`
}

// recordHistory keeps an accepted message in the history, once, on the node
// the sender is on (copies received from other nodes are not recorded).
func (h *Handler) recordHistory(id, from, to, group, content string, now int64) {
	if h.history == nil {
		return
	}
	h.history.Record(history.Entry{ID: id, From: from, To: to, Group: group, Content: content, Time: now})
}

// historyFrame serves {"flag":"history","with"|"group",...} for the account
// the connection speaks for.
func (h *Handler) historyFrame(c *hub.Conn, f *Frame) error {
	reader, e := bound(c)
	if e != nil {
		return e
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	page, err := h.History(ctx, HistoryRequest{Reader: reader, With: f.With, Group: f.Group, Before: f.Before, Limit: f.Limit})
	if err != nil {
		return err
	}
	page.Flag = "history"
	b, err := json.Marshal(page)
	if err != nil {
		return err
	}
	h.reply(c, b)
	return nil
}

// History reads one page of a conversation for r.Reader, who must be one of
// its two parties (a one-to-one conversation is always the reader's own with
// r.With) or a member of r.Group. Bad input and refusals are *Error.
func (h *Handler) History(ctx context.Context, r HistoryRequest) (HistoryPage, error) {
	var page HistoryPage
	if h.history == nil {
		return page, newError(CodeUnavailable, "history is not enabled on this server (history.enabled)")
	}
	if e := checkAccount(r.Reader, "account", h.cfg.MaxAccountChars); e != nil {
		return page, e
	}
	switch {
	case r.With != "" && r.Group != "":
		return page, newError(CodeBadField, "give with or group, not both")
	case r.With == "" && r.Group == "":
		return page, newError(CodeMissingField, "with (an account) or group is required")
	case r.Limit > MaxHistoryPage:
		return page, newError(CodeBadField, "limit must be at most "+strconv.Itoa(MaxHistoryPage))
	case len(r.Before) > 64:
		return page, newError(CodeBadField, "before must be a message id")
	}
	limit := r.Limit
	if limit == 0 {
		limit = DefaultHistoryPage
	}
	var conv string
	if r.Group != "" {
		if e := checkAccount(r.Group, "group", 64); e != nil {
			return page, e
		}
		set, err := h.groups.Get(ctx, r.Group)
		if err != nil {
			return page, err
		}
		if !set.Has(r.Reader) {
			return page, newError(CodeForbidden, "you are not a member of group "+quote(r.Group))
		}
		conv, page.Group = history.GroupConv(r.Group), r.Group
	} else {
		if e := checkAccount(r.With, "with", h.cfg.MaxAccountChars); e != nil {
			return page, e
		}
		conv, page.With = history.PairConv(r.Reader, r.With), r.With
	}
	start := time.Now()
	entries, more, err := h.history.Page(ctx, conv, r.Before, limit)
	h.metrics.SQL("history_page", time.Since(start))
	switch {
	case errors.Is(err, history.ErrUnknownBefore):
		return page, newError(CodeNotFound, "before "+quote(r.Before)+" is not a message of this conversation")
	case err != nil:
		h.log.Error().Err(err).Str("conv", conv).Msg("history page not read")
		return page, newError(CodeUnavailable, "history cannot be read right now; try again")
	}
	page.More = more
	page.Messages = make([]HistoryMessage, len(entries))
	for i, e := range entries {
		page.Messages[i] = historyMessage(e)
	}
	return page, nil
}
