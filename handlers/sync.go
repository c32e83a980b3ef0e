package handlers

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"chatserver/history"
	"chatserver/hub"
)

// Sync after a reconnect: a client names the conversations it keeps and the
// last seq it saw in each ({"flag":"sync","since":{"bob":41,"g:team":7}}, or
// "sync" in its init) and gets what it missed from the history, oldest first,
// a page per conversation. Messages also pending in the offline pool come
// again at init with the same id: the client drops the repeat.

// MaxSyncConversations bounds the conversations of one sync frame.
const MaxSyncConversations = 100

// SyncConversation is what one conversation missed: the messages with a seq
// above Since, oldest first; More says more follow (ask again from the last seq).
type SyncConversation struct {
	With     string           `json:"with,omitempty"`
	Group    string           `json:"group,omitempty"`
	Since    int64            `json:"since"`
	Messages []HistoryMessage `json:"messages"`
	More     bool             `json:"more"`
}

// SyncAnswer answers a sync, its conversations in the order of their keys.
type SyncAnswer struct {
	Flag          string             `json:"flag"`
	Conversations []SyncConversation `json:"conversations"`
}

// changeFields reads the fields of recall, edit and sync frames, and the sync
// and recall fields of init; other frames stay as legacy clients send them.
func changeFields(f *Frame, raw fields) *Error {
	var e *Error
	switch f.Flag {
	case "recall", "edit":
		f.Group, _, e = account(raw.group, "group")
		return e
	case "sync":
		if f.Since, f.hasSince, e = sinceMap(raw.since, "since"); e != nil {
			return e
		}
		f.Limit, e = count(raw.limit, "limit")
		return e
	case "init":
		if f.Since, f.hasSince, e = sinceMap(raw.sync, "sync"); e != nil {
			return e
		}
		switch {
		case raw.recall.kind == kOther && string(raw.recall.raw) == "true":
			f.Recall = true
		case raw.recall.kind == kAbsent || raw.recall.kind == kNull || (raw.recall.kind == kOther && string(raw.recall.raw) == "false"):
		default:
			return newError(CodeBadField, "recall must be true or false")
		}
	}
	return nil
}

// sinceMap reads {"<account>"|"g:<group>": <seq>, ...}; null counts as absent.
func sinceMap(v field, name string) (map[string]int64, bool, *Error) {
	if v.kind == kAbsent || v.kind == kNull {
		return nil, false, nil
	}
	bad := newError(CodeBadField, name+` must be an object of conversations and the last seq seen, like {"bob":41,"g:team":7}`)
	if v.kind != kOther || v.raw[0] != '{' {
		return nil, false, bad
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(v.raw, &m) != nil {
		return nil, false, bad
	}
	if len(m) == 0 || len(m) > MaxSyncConversations {
		return nil, false, newError(CodeBadField, name+" must name 1.."+strconv.Itoa(MaxSyncConversations)+" conversations")
	}
	out := make(map[string]int64, len(m))
	for k, raw := range m {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 {
			return nil, false, newError(CodeBadField, name+": the seq of "+quote(k)+" must be a non-negative integer")
		}
		out[k] = n
	}
	return out, true, nil
}

// syncFrame serves {"flag":"sync","since":{...},"limit":n}.
func (h *Handler) syncFrame(c *hub.Conn, f *Frame) error {
	reader, e := bound(c)
	if e != nil {
		return e
	}
	if !f.hasSince {
		return newError(CodeMissingField, `since is required: {"<account>"|"g:<group>": <last seq seen>, ...}`)
	}
	return h.answerSync(c, reader, f.Since, f.Limit)
}

// answerSync sends c what reader missed in the conversations of since.
func (h *Handler) answerSync(c *hub.Conn, reader string, since map[string]int64, limit int) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	ans, err := h.Sync(ctx, reader, since, limit)
	if err != nil {
		return err
	}
	b, err := json.Marshal(ans)
	if err != nil {
		return err
	}
	h.reply(c, b)
	return nil
}

// Sync reads, for reader, the messages of each conversation of since with a
// seq above the one given, up to limit per conversation (0: the default page).
// Every key is checked before anything is read: one refused key refuses all.
func (h *Handler) Sync(ctx context.Context, reader string, since map[string]int64, limit int) (SyncAnswer, error) {
	ans := SyncAnswer{Flag: "sync", Conversations: []SyncConversation{}}
	cs, _ := h.history.(Changes)
	if cs == nil {
		return ans, newError(CodeUnavailable, "history is not enabled on this server (history.enabled)")
	}
	if limit > MaxHistoryPage {
		return ans, newError(CodeBadField, "limit must be at most "+strconv.Itoa(MaxHistoryPage))
	}
	if limit == 0 {
		limit = DefaultHistoryPage
	}
	keys := make([]string, 0, len(since))
	for k := range since {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	convs := make([]string, len(keys))
	for i, k := range keys {
		sc := SyncConversation{Since: since[k], Messages: []HistoryMessage{}}
		if g, ok := strings.CutPrefix(k, "g:"); ok {
			if e := checkAccount(g, "group", 64); e != nil {
				return ans, e
			}
			set, err := h.groups.Get(ctx, g)
			if err != nil {
				return ans, err
			}
			if !set.Has(reader) {
				return ans, newError(CodeForbidden, "you are not a member of group "+quote(g))
			}
			sc.Group, convs[i] = g, history.GroupConv(g)
		} else {
			if e := checkAccount(k, "since", h.cfg.MaxAccountChars); e != nil {
				return ans, e
			}
			sc.With, convs[i] = k, history.PairConv(reader, k)
		}
		ans.Conversations = append(ans.Conversations, sc)
	}
	start := time.Now()
	defer func() { h.metrics.SQL("history_sync", time.Since(start)) }()
	for i := range ans.Conversations {
		sc := &ans.Conversations[i]
		entries, more, err := cs.After(ctx, convs[i], sc.Since, limit)
		if err != nil {
			h.log.Error().Err(err).Str("conv", convs[i]).Msg("sync not read")
			return ans, newError(CodeUnavailable, "history cannot be read right now; try again")
		}
		sc.More = more
		for _, e := range entries {
			sc.Messages = append(sc.Messages, historyMessage(e))
		}
	}
	return ans, nil
}

// historyMessage is e as clients see it.
func historyMessage(e history.Entry) HistoryMessage {
	return HistoryMessage{ID: e.ID, Seq: e.Seq, From: e.From, To: e.To, Group: e.Group, Content: e.Content, Time: e.Time,
		Recalled: e.Recalled, Edited: e.Edited}
}
