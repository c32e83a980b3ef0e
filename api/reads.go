package api

import (
	"context"
	"net/http"

	"chatserver/handlers"
)

// ReadState answers from the read cursors (handlers.Handler, with history on).
type ReadState interface {
	Unread(ctx context.Context, account string) (handlers.UnreadCounts, error)
	Conversations(ctx context.Context, account string, countsOnly bool) (handlers.ConversationList, error)
}

// unreadAny serves GET /api/unread: with by=conversation the unread counts
// from the read cursors, as the unread frame answers them; without by, the
// offline rows per sender, as always.
func (s *Server) unreadAny(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("by") {
	case "":
		s.unreadCounts(w, r)
	case "conversation":
		s.readState(w, r, func(ctx context.Context, account string) (any, error) { return s.reads.Unread(ctx, account) })
	default:
		s.fail(w, http.StatusBadRequest, "bad_field", "by must be conversation (or absent: offline messages per sender)")
	}
}

// GET /api/conversations?account=alice -> {"conversations":[{"with"|"group",
// "last":{...},"unread":n,"read":"<id>"},...]}, newest first: the
// conversations frame's answer.
func (s *Server) conversations(w http.ResponseWriter, r *http.Request) {
	s.readState(w, r, func(ctx context.Context, account string) (any, error) {
		return s.reads.Conversations(ctx, account, false)
	})
}

func (s *Server) readState(w http.ResponseWriter, r *http.Request, get func(context.Context, string) (any, error)) {
	account := r.URL.Query().Get("account")
	if account == "" {
		s.fail(w, http.StatusBadRequest, "missing_field", "account is required")
		return
	}
	if s.reads == nil {
		s.fail(w, http.StatusServiceUnavailable, handlers.CodeUnavailable, "read state is not enabled on this server (history.enabled)")
		return
	}
	out, err := get(r.Context(), account)
	if err != nil {
		s.failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
