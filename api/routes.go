package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"chatserver/handlers"
)

type message struct {
	From    *string `json:"from"`
	To      *string `json:"to"`
	Content *string `json:"content"`
}

// readMessage decodes a {from,[to],content} body; it answers 400 itself, naming
// the first missing field, and returns false.
func (s *Server) readMessage(w http.ResponseWriter, r *http.Request, withTo bool) (message, bool) {
	var m message
	if !s.decode(w, r, &m) {
		return m, false
	}
	missing := ""
	switch {
	case m.From == nil:
		missing = "from"
	case withTo && m.To == nil:
		missing = "to"
	case m.Content == nil:
		missing = "content"
	}
	if missing != "" {
		s.fail(w, http.StatusBadRequest, "missing_field", missing+" is required")
		return m, false
	}
	return m, true
}

// POST /api/push {from,to,content} -> {"status":"pushed"|"stored"}
func (s *Server) push(w http.ResponseWriter, r *http.Request) {
	m, ok := s.readMessage(w, r, true)
	if !ok {
		return
	}
	stored, err := s.chat.Push(*m.From, *m.To, *m.Content)
	if err != nil {
		s.failErr(w, err)
		return
	}
	status := "pushed"
	if stored {
		status = "stored"
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": status})
}

// POST /api/group/{id}/push {from,content} -> {"members":n,"pushed":n,"stored":n}
func (s *Server) groupPush(w http.ResponseWriter, r *http.Request) {
	m, ok := s.readMessage(w, r, false)
	if !ok {
		return
	}
	res, err := s.chat.PushGroup(r.Context(), *m.From, r.PathValue("id"), *m.Content, false)
	if err != nil {
		s.failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"members": res.Members, "pushed": res.Pushed, "stored": res.Stored})
}

// POST /api/broadcast {from,content} -> {"connections":n}
func (s *Server) broadcast(w http.ResponseWriter, r *http.Request) {
	m, ok := s.readMessage(w, r, false)
	if !ok {
		return
	}
	n, err := s.chat.Announce(*m.From, *m.Content)
	if err != nil {
		s.failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"connections": n})
}

// POST /api/disconnect {account,[reason]} -> {"closed":n,"announced":bool}:
// closes every connection of the account with close 4004; closed counts this
// node's, announced says the other nodes were told to close theirs.
func (s *Server) disconnect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Account *string `json:"account"`
		Reason  string  `json:"reason"`
	}
	if !s.decode(w, r, &body) {
		return
	}
	if body.Account == nil {
		s.fail(w, http.StatusBadRequest, "missing_field", "account is required")
		return
	}
	d, err := s.chat.Disconnect(*body.Account, body.Reason)
	if err != nil {
		s.failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"closed": d.Closed, "announced": d.Announced})
}

// accounts reads ?account=a&account=b or ?account=a,b.
func accounts(r *http.Request) []string {
	var out []string
	for _, v := range r.URL.Query()["account"] {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

// maxAccountsPerCall bounds /api/online and /api/unread.
const maxAccountsPerCall = 1000

func (s *Server) queryAccounts(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	as := accounts(r)
	switch {
	case len(as) == 0:
		s.fail(w, http.StatusBadRequest, "missing_field", "give ?account=... (one or more, or comma-separated)")
		return nil, false
	case len(as) > maxAccountsPerCall:
		s.fail(w, http.StatusBadRequest, "too_many", "at most 1000 accounts per call")
		return nil, false
	}
	return as, true
}

// GET /api/online?account=a&account=b -> {"online":{"a":true,"b":false}}
func (s *Server) online(w http.ResponseWriter, r *http.Request) {
	perAccount(s, w, r, "online", s.chat.Online)
}

// GET /api/unread?account=a -> {"unread":{"a":{"bob":3}}}
func (s *Server) unreadCounts(w http.ResponseWriter, r *http.Request) {
	perAccount(s, w, r, "unread", s.unread.Unread)
}

// perAccount answers {name: {account: get(account)}} for the accounts of the
// query, or the first error.
func perAccount[T any](s *Server, w http.ResponseWriter, r *http.Request, name string, get func(context.Context, string) (T, error)) {
	as, ok := s.queryAccounts(w, r)
	if !ok {
		return
	}
	out := make(map[string]T, len(as))
	for _, a := range as {
		v, err := get(r.Context(), a)
		if err != nil {
			s.failErr(w, err)
			return
		}
		out[a] = v
	}
	writeJSON(w, http.StatusOK, map[string]any{name: out})
}

// GET /api/group/{id}/members -> {"group":id,"members":[...]}
func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	set, err := s.members.Get(r.Context(), id)
	if err != nil {
		s.failErr(w, err)
		return
	}
	members := set.Members()
	if members == nil {
		members = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"group": id, "members": members})
}

// PUT/DELETE /api/group/{id}/members {"accounts":[...]}
func (s *Server) changeMembers(add bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Accounts []string `json:"accounts"`
		}
		if !s.decode(w, r, &body) {
			return
		}
		id := r.PathValue("id")
		if id == "" || len(id) > 64 {
			s.fail(w, http.StatusBadRequest, "bad_field", "the group id must be 1 to 64 characters")
			return
		}
		if len(body.Accounts) == 0 {
			s.fail(w, http.StatusBadRequest, "missing_field", "accounts must list at least one account")
			return
		}
		for _, a := range body.Accounts {
			if a == "" || len(a) > 64 || strings.ContainsFunc(a, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
				s.fail(w, http.StatusBadRequest, "bad_field", "accounts must be 1 to 64 characters without control characters")
				return
			}
		}
		var err error
		if add {
			err = s.members.Add(r.Context(), id, body.Accounts)
		} else {
			err = s.members.Remove(r.Context(), id, body.Accounts)
		}
		if err != nil {
			s.failErr(w, err)
			return
		}
		s.listMembers(w, r)
	}
}

// GET /api/history?account=alice&with=bob|group=team[&before=<id>][&limit=n]
// -> {"with"|"group","messages":[...],"more":bool}: a page of the conversation
// as account sees it (account must be a party, or a member of the group).
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("account") == "" {
		s.fail(w, http.StatusBadRequest, "missing_field", "account is required")
		return
	}
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			s.fail(w, http.StatusBadRequest, "bad_field", "limit must be a non-negative integer")
			return
		}
		limit = n
	}
	page, err := s.chat.History(r.Context(), handlers.HistoryRequest{
		Reader: q.Get("account"), With: q.Get("with"), Group: q.Get("group"), Before: q.Get("before"), Limit: limit,
	})
	if err != nil {
		s.failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}
