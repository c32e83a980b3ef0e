package handlers

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"chatserver/history"
	"chatserver/hub"
)

// historyCatchUp bounds the wait of an unread or conversations answer for
// this node's history writers.
const historyCatchUp = time.Second

// MaxConversations bounds the conversations one unread or conversations
// answer reads (each costs a few index lookups).
const MaxConversations = 1000

// ConversationState is one conversation as its reader sees it: the other
// party or the group, the newest message (absent for a group nobody wrote
// to), the unread count (others' messages past the cursor, up to
// history.MaxUnread) and the id of the newest message read ("" for none).
type ConversationState struct {
	With   string          `json:"with,omitempty"`
	Group  string          `json:"group,omitempty"`
	Last   *HistoryMessage `json:"last,omitempty"`
	Unread int             `json:"unread"`
	Read   string          `json:"read,omitempty"`

	seq int64 // the newest message's, for the order
}

// ConversationList is an account's conversations, newest message first.
type ConversationList struct {
	Flag          string              `json:"flag,omitempty"`
	Conversations []ConversationState `json:"conversations"`
}

// UnreadCounts is an account's conversations that have unread messages, and
// the sum of their counts.
type UnreadCounts struct {
	Flag          string              `json:"flag,omitempty"`
	Conversations []ConversationState `json:"conversations"`
	Total         int                 `json:"total"`
}

// unreadFrame serves {"flag":"unread"}.
func (h *Handler) unreadFrame(c *hub.Conn, _ *Frame) error {
	account, e := bound(c)
	if e != nil {
		return e
	}
	h.receipts.want(c)
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.DrainTimeout)
	defer cancel()
	u, err := h.Unread(ctx, account)
	if err != nil {
		return err
	}
	u.Flag = "unread"
	return h.replyJSON(c, u)
}

// conversationsFrame serves {"flag":"conversations"}.
func (h *Handler) conversationsFrame(c *hub.Conn, _ *Frame) error {
	account, e := bound(c)
	if e != nil {
		return e
	}
	h.receipts.want(c)
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.DrainTimeout)
	defer cancel()
	l, err := h.Conversations(ctx, account, false)
	if err != nil {
		return err
	}
	l.Flag = "conversations"
	return h.replyJSON(c, l)
}

func (h *Handler) replyJSON(c *hub.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h.reply(c, b)
	return nil
}

// Unread answers account's unread counts, one per conversation that has any.
func (h *Handler) Unread(ctx context.Context, account string) (UnreadCounts, error) {
	u := UnreadCounts{Conversations: []ConversationState{}}
	l, err := h.Conversations(ctx, account, true)
	if err != nil {
		return u, err
	}
	for _, s := range l.Conversations {
		if s.Unread > 0 {
			s.Last = nil
			u.Conversations = append(u.Conversations, s)
			u.Total += s.Unread
		}
	}
	return u, nil
}

// changeMarks marks a conversation's newest message recalled or edited
// (history.Store, with recall and edit).
type changeMarks interface {
	ApplyChanges(ctx context.Context, conv string, entries []history.Entry) error
}

// Conversations answers account's conversations (one-to-one ones and its
// groups), newest message first, each with its last message and unread
// count; countsOnly leaves the last messages out of the reads.
func (h *Handler) Conversations(ctx context.Context, account string, countsOnly bool) (ConversationList, error) {
	l := ConversationList{Conversations: []ConversationState{}}
	if _, e := h.readConv(ctx, account, "", "", false); e != nil {
		return l, e
	}
	start := time.Now()
	defer func() { h.metrics.SQL("conversations", time.Since(start)) }()
	if err := h.reads.FlushCursors(ctx); err != nil { // this node's reads count
		return l, newError(CodeUnavailable, "the read state is not written yet; try again")
	}
	// And, if they come soon, the messages this node accepted so far (a list
	// drawn right after a send shows it); under a backlog, the list as written.
	fctx, cancel := context.WithTimeout(ctx, historyCatchUp)
	_ = h.reads.Flush(fctx)
	cancel()
	convs, err := h.reads.Conversations(ctx, account)
	if err != nil {
		h.log.Error().Err(err).Str("account", account).Msg("conversations not read")
		return l, newError(CodeUnavailable, "the conversations cannot be read right now; try again")
	}
	if len(convs) > MaxConversations {
		convs = convs[:MaxConversations]
	}
	for _, cv := range convs {
		s := ConversationState{With: cv.With, Group: cv.Group}
		n, cur, err := h.reads.Unread(ctx, account, cv.Conv)
		if err != nil {
			h.log.Error().Err(err).Str("conv", cv.Conv).Msg("unread count not read")
			return l, newError(CodeUnavailable, "the unread counts cannot be read right now; try again")
		}
		s.Unread, s.Read = n, cur.ID
		if !countsOnly {
			e, ok, err := h.reads.Last(ctx, cv.Conv)
			if err != nil {
				h.log.Error().Err(err).Str("conv", cv.Conv).Msg("last message not read")
				return l, newError(CodeUnavailable, "the conversations cannot be read right now; try again")
			}
			if ok {
				if cm, marks := h.history.(changeMarks); marks {
					es := []history.Entry{e}
					if err := cm.ApplyChanges(ctx, cv.Conv, es); err != nil {
						h.log.Error().Err(err).Str("conv", cv.Conv).Msg("last message's recall or edit not read")
						return l, newError(CodeUnavailable, "the conversations cannot be read right now; try again")
					}
					e = es[0]
				}
				m := historyMessage(e)
				s.Last = &m
				s.seq = e.Seq
			} else if cv.Group == "" {
				continue // its messages were deleted (retention)
			}
		}
		l.Conversations = append(l.Conversations, s)
	}
	sort.SliceStable(l.Conversations, func(i, j int) bool { return l.Conversations[i].seq > l.Conversations[j].seq })
	return l, nil
}
