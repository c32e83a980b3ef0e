package handlers

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"chatserver/cluster"
	"chatserver/history"
	"chatserver/hub"
	"chatserver/offline"
)

// Recall and edit. The sender of a message may take it back
// ({"flag":"recall","to":"bob","id":...}, or "group":"team" instead of "to")
// or replace its content ({"flag":"edit",...,"content":...}) within
// Config.RecallWindow of sending it. The history row changes (history/recall.go);
// a copy still unsent in the offline pool is deleted (recall) or rewritten
// (edit), so that nobody, legacy clients included, gets the old one at init;
// connections that asked for them at init ("recall":true) get
// {"flag":"recall"|"edit","from","id",...} now, wherever they are connected;
// an account none of whose connections took it gets it at its next such init.
// Legacy connections never get these frames: they would show them as messages.

// CodeTooLate: a recall or edit past the recall window.
const CodeTooLate = "too_late"

// Changes is what recall, edit and sync need of the history (history.Store
// with its Writer); the handler's History provides it when history is on.
type Changes interface {
	Flush(ctx context.Context) error
	Find(ctx context.Context, conv, id string) (history.Entry, error)
	Recall(ctx context.Context, conv, id string) error
	Edit(ctx context.Context, conv, id, content string, at int64) error
	After(ctx context.Context, conv string, after int64, limit int) ([]history.Entry, bool, error)
	SavePending(ctx context.Context, events []history.Event) error
	Pending(ctx context.Context, account string, limit int) ([]history.Event, error)
	DeletePending(ctx context.Context, seqs []int64) error
}

// Unsent is the offline pool's side of recall and edit (offline.Store): the
// copies of a message not pushed yet.
type Unsent interface {
	WithdrawUnsent(ctx context.Context, id string, to []string) ([]string, error)
	EditUnsent(ctx context.Context, id string, to []string, content string) ([]string, error)
}

// pendingPage is the pending events read per query at init.
const pendingPage = 500

// maxRecentChanges bounds the recalls and edits a node remembers for the
// copies that go back to the pool after them (about 100 bytes each).
const maxRecentChanges = 10_000

// changeState is the handler's part of recall and edit: the connections that
// asked for the frames at init, and the recent changes made or received here.
type changeState struct {
	takers sync.Map // *hub.Conn -> struct{}

	// A copy pushed to an acknowledging connection that closes without
	// acknowledging it, or held for a connection and stored after all, goes
	// back to the pool (message.Requeue) after a recall or edit may have
	// passed: it is dropped, or takes the new content. The oldest are
	// forgotten first.
	mu     sync.Mutex
	recent map[string]history.Event // by message id
	order  []string                 // ids, oldest first
	any    atomic.Bool              // recent is not empty: the common case costs one load
}

func (s *changeState) addTaker(c *hub.Conn)     { s.takers.Store(c, struct{}{}) }
func (s *changeState) dropTaker(c *hub.Conn)    { s.takers.Delete(c) }
func (s *changeState) isTaker(c *hub.Conn) bool { _, ok := s.takers.Load(c); return ok }

// note remembers ev for the copies of its message stored again later.
func (s *changeState) note(ev history.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recent == nil {
		s.recent = make(map[string]history.Event)
	}
	if _, seen := s.recent[ev.ID]; !seen {
		if len(s.order) >= maxRecentChanges {
			delete(s.recent, s.order[0])
			s.order = s.order[1:]
		}
		s.order = append(s.order, ev.ID)
	}
	if prev, seen := s.recent[ev.ID]; seen && prev.Kind == history.KindRecall {
		return // a recall stays
	}
	s.recent[ev.ID] = ev
	s.any.Store(true)
}

// apply changes m as the recent recall or edit of its message says, and
// reports whether it is still to be stored (false: recalled).
func (s *changeState) apply(m *offline.Message) bool {
	if !s.any.Load() {
		return true
	}
	s.mu.Lock()
	ev, ok := s.recent[m.ID]
	s.mu.Unlock()
	switch {
	case !ok || ev.From != m.From:
		return true
	case ev.Kind == history.KindRecall:
		return false
	default:
		m.Content = ev.Content
		return true
	}
}

func (h *Handler) recall(c *hub.Conn, f *Frame) error { return h.change(c, f, history.KindRecall) }
func (h *Handler) edit(c *hub.Conn, f *Frame) error   { return h.change(c, f, history.KindEdit) }

// change serves a recall or an edit frame. Refusals change nothing; a failure
// after the history changed answers unavailable, and sending the frame again
// completes it.
func (h *Handler) change(c *hub.Conn, f *Frame, kind string) error {
	me, e := bound(c)
	if e != nil {
		return e
	}
	if f.hasFrom && f.From != me {
		return newError(CodeWrongSender, "this connection speaks for "+quote(me)+", not "+quote(f.From))
	}
	cs, _ := h.history.(Changes)
	if cs == nil || h.cfg.RecallWindow <= 0 {
		return newError(CodeUnavailable, kind+" is not enabled on this server (history.enabled, history.recall_window)")
	}
	switch {
	case f.To != "" && f.Group != "":
		return newError(CodeBadField, "give to or group, not both")
	case f.To == "" && f.Group == "":
		return newError(CodeMissingField, "to (an account) or group is required")
	case f.ID == "":
		return newError(CodeMissingField, "id (the message's) is required")
	case len(f.ID) > 32:
		return newError(CodeBadField, "id must be a message id")
	case kind == history.KindEdit && !f.hasContent:
		return newError(CodeMissingField, "content is required")
	}
	if kind == history.KindEdit {
		if e := h.checkContent(f.Content); e != nil {
			return e
		}
	}
	var conv string
	if f.Group != "" {
		if e := checkAccount(f.Group, "group", 64); e != nil {
			return e
		}
		conv = history.GroupConv(f.Group)
	} else {
		if e := checkAccount(f.To, "to", h.cfg.MaxAccountChars); e != nil {
			return e
		}
		conv = history.PairConv(me, f.To)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	entry, err := cs.Find(ctx, conv, f.ID)
	if errors.Is(err, history.ErrUnknownMessage) {
		// Sent a moment ago: still in the history writer's queue.
		if err = cs.Flush(ctx); err == nil {
			entry, err = cs.Find(ctx, conv, f.ID)
		}
	}
	switch {
	case errors.Is(err, history.ErrUnknownMessage):
		return newError(CodeNotFound, "id "+quote(f.ID)+" is not a message of this conversation")
	case err != nil:
		h.log.Error().Err(err).Str("conv", conv).Msg(kind + ": message not read")
		return newError(CodeUnavailable, "history cannot be read right now; try again")
	case entry.From != me:
		return newError(CodeForbidden, "only its sender may "+kind+" message "+quote(f.ID))
	case kind == history.KindEdit && entry.Recalled:
		return newError(CodeNotFound, "message "+quote(f.ID)+" was recalled")
	}
	now := h.now()
	if now.Sub(time.Unix(entry.Time, 0)) > h.cfg.RecallWindow {
		return newError(CodeTooLate, "message "+quote(f.ID)+" is older than "+h.cfg.RecallWindow.String()+"; it can no longer be changed")
	}
	ev := history.Event{Kind: kind, ID: f.ID, From: me, Group: f.Group, Time: now.Unix()}
	if kind == history.KindEdit {
		ev.Content = f.Content
		err = cs.Edit(ctx, conv, f.ID, f.Content, ev.Time)
	} else {
		err = cs.Recall(ctx, conv, f.ID)
	}
	if err != nil {
		h.log.Error().Err(err).Str("conv", conv).Str("id", f.ID).Msg(kind + " not stored")
		return newError(CodeUnavailable, "the "+kind+" could not be stored; try again")
	}
	h.changes.note(ev) // before the pool is changed: a copy stored again after it is changed too
	to := []string{f.To}
	if f.Group != "" {
		set, err := h.groups.Get(ctx, f.Group)
		if err != nil {
			return err
		}
		to = to[:0]
		for _, a := range set.Members() {
			if a != me {
				to = append(to, a)
			}
		}
	}
	done, err := h.changeUnsent(ctx, ev, to)
	if err != nil {
		h.log.Error().Err(err).Str("id", f.ID).Msg(kind + ": offline copies not changed")
		return newError(CodeUnavailable, "the "+kind+" is kept in history but not every recipient could be reached; send it again")
	}
	skip := make(map[string]bool, len(done)+1)
	for _, a := range done {
		skip[a] = true
	}
	// The sender's other connections hear of it too (never stored for it).
	skip[me] = true
	h.deliverChange(ev, append(to, me), skip, c)
	h.reply(c, changeAnswer(kind, f.ID, ev.Time, f.CID))
	return nil
}

// changeUnsent applies ev to the copies of its message still unsent in the
// offline pool, once what is queued for the pool is committed, and returns
// the accounts whose copy it changed: they get the right one at init and are
// owed no frame.
func (h *Handler) changeUnsent(ctx context.Context, ev history.Event, to []string) ([]string, error) {
	u, _ := h.backlog.(Unsent)
	if u == nil || len(to) == 0 {
		return nil, nil
	}
	if err := h.queue.Flush(ctx); err != nil {
		return nil, err
	}
	if ev.Kind == history.KindEdit {
		return u.EditUnsent(ctx, ev.ID, to, ev.Content)
	}
	return u.WithdrawUnsent(ctx, ev.ID, to)
}

// deliverChange sends ev's frame to the connections that take it, of the
// accounts in to, here and on other nodes (never to except); for each
// account none of whose connections took it, and not in skip, ev is stored
// for its next init. It returns once every account is settled and stored
// (other nodes answer within the bus's confirmation timeout), so that the
// sender's answer comes after; past changeWait it returns anyway.
func (h *Handler) deliverChange(ev history.Event, to []string, skip map[string]bool, except *hub.Conn) {
	frame := changePayload(ev)
	t := &changeFan{h: h, ev: ev, skip: skip, waiting: map[string]int{}, reached: map[string]bool{}, done: make(chan struct{})}
	for _, a := range to {
		if t.waiting[a] == 0 {
			t.left++
		}
		t.waiting[a] = 1 // this node's part, settled below
	}
	defer t.wait()
	remote := h.remoteNow()
	var where map[string][]string
	if remote != nil {
		ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
		defer cancel()
		var err error
		if where, err = remote.Locate(ctx, to); err != nil {
			where = nil // stored for those not here
		}
		byNode := map[string][]string{}
		for _, a := range to {
			for _, n := range where[a] {
				byNode[n] = append(byNode[n], a)
				t.waiting[a]++
			}
		}
		for n, accounts := range byNode {
			env := cluster.Envelope{Kind: ev.Kind, From: ev.From, To: accounts, Group: ev.Group, Content: ev.Content, ID: ev.ID, AddTime: ev.Time}
			if err := remote.Send(ctx, n, env, func(out []cluster.Outcome) {
				for i, o := range out {
					t.settle(accounts[i], o == cluster.Pushed)
				}
			}); err != nil {
				for _, a := range accounts {
					t.settle(a, false)
				}
			}
		}
	}
	for _, a := range to {
		t.settle(a, h.pushChange(a, frame, except) > 0)
	}
}

// changeFan follows one change to its accounts: each is settled once this
// node and every other node it was sent to have answered.
type changeFan struct {
	h    *Handler
	ev   history.Event
	skip map[string]bool

	mu      sync.Mutex
	waiting map[string]int // answers still to come, per account
	reached map[string]bool
	left    int           // accounts not settled
	done    chan struct{} // closed when left reaches 0
	stores  sync.WaitGroup
}

// changeWait bounds how long a recall or edit waits for other nodes' answers.
const changeWait = remoteTimeout + cluster.DefaultConfirmTimeout

func (t *changeFan) settle(account string, took bool) {
	t.mu.Lock()
	if took {
		t.reached[account] = true
	}
	t.waiting[account]--
	last := t.waiting[account] == 0
	store := last && !t.reached[account] && !t.skip[account]
	if store {
		ev := t.ev
		ev.To = account
		t.stores.Add(1)
		go func() { // off the bus's goroutine
			defer t.stores.Done()
			t.h.storeChange(ev)
		}()
	}
	if last {
		if t.left--; t.left == 0 {
			close(t.done)
		}
	}
	t.mu.Unlock()
}

// wait returns once every account is settled and stored, or after changeWait.
func (t *changeFan) wait() {
	timer := time.NewTimer(changeWait)
	defer timer.Stop()
	select {
	case <-t.done:
		t.stores.Wait() // every Add came before done was closed
	case <-timer.C:
	}
}

// storeChange keeps ev for its account's next init.
func (h *Handler) storeChange(ev history.Event) {
	cs, _ := h.history.(Changes)
	if cs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	if err := cs.SavePending(ctx, []history.Event{ev}); err != nil {
		h.log.Error().Err(err).Str("to", ev.To).Str("id", ev.ID).Str("kind", ev.Kind).
			Msg("a recall or edit for an account not connected could not be stored; it will not get it")
	}
}

// pushChange writes frame to account's connections here that take it, but
// except, and returns how many it reached.
func (h *Handler) pushChange(account string, frame []byte, except *hub.Conn) int {
	n := 0
	for _, c := range h.table.Conns(account) {
		if c != except && h.changes.isTaker(c) && c.Send(frame) == nil {
			n++
		}
	}
	return n
}

// receiveChange serves a recall or edit another node sent for the listed
// accounts' connections here.
func (h *Handler) receiveChange(env cluster.Envelope, reply *cluster.Reply) {
	ev := history.Event{Kind: env.Kind, ID: env.ID, From: env.From, Group: env.Group, Content: env.Content, Time: env.AddTime}
	h.changes.note(ev)
	frame := changePayload(ev)
	for i, a := range env.To {
		if h.pushChange(a, frame, nil) > 0 {
			reply.Report(i, cluster.Pushed)
		} else {
			reply.Report(i, cluster.Gone)
		}
	}
}

// initChanges serves the parts of an init that only new clients send:
// "recall":true makes c take recall and edit frames, and pushes those its
// account was owed; "sync" answers as a sync frame does.
func (h *Handler) initChanges(c *hub.Conn, f *Frame) {
	if f.Recall {
		h.changes.addTaker(c)
		h.pushPending(c, f.From)
	}
	if f.hasSince {
		if err := h.answerSync(c, f.From, f.Since, f.Limit); err != nil {
			e, known := asError(err)
			if !known {
				h.log.Error().Err(err).Str("account", f.From).Msg("sync at init failed")
			}
			h.fail(c, "sync", e)
		}
	}
}

// pushPending writes to c the recall and edit frames account was owed, oldest
// first, and deletes them once written. If the database cannot be read they
// stay for the next init.
func (h *Handler) pushPending(c *hub.Conn, account string) {
	cs, _ := h.history.(Changes)
	if cs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	for {
		evs, err := cs.Pending(ctx, account, pendingPage)
		if err != nil {
			h.log.Warn().Err(err).Str("account", account).Msg("recalls and edits owed could not be read; they wait for the next init")
			return
		}
		seqs := make([]int64, 0, len(evs))
		for _, ev := range evs {
			if c.Send(changePayload(ev)) != nil {
				break // closing: the rest wait
			}
			seqs = append(seqs, ev.Seq)
		}
		if err := cs.DeletePending(ctx, seqs); err != nil {
			h.log.Warn().Err(err).Str("account", account).Msg("recalls and edits pushed could not be deleted; they come again at the next init")
			return
		}
		if len(evs) < pendingPage || len(seqs) < len(evs) {
			return
		}
	}
}

// changePayload is what a recipient gets: {"flag":"recall","from","id"} or
// {"flag":"edit","from","id","content","edited"}, with "group" for a group's.
func changePayload(ev history.Event) []byte {
	b := make([]byte, 0, 64+len(ev.From)+len(ev.ID)+len(ev.Group)+len(ev.Content))
	b = append(b, `{"flag":`...)
	b = appendString(b, ev.Kind)
	b = append(b, `,"from":`...)
	b = appendString(b, ev.From)
	b = append(b, `,"id":`...)
	b = appendString(b, ev.ID)
	if ev.Group != "" {
		b = append(b, `,"group":`...)
		b = appendString(b, ev.Group)
	}
	if ev.Kind == history.KindEdit {
		b = append(b, `,"content":`...)
		b = appendString(b, ev.Content)
		b = append(b, `,"edited":`...)
		b = strconv.AppendInt(b, ev.Time, 10)
	}
	return append(b, '}')
}

// changeAnswer tells the sender its recall or edit is done:
// {"flag":"recall","ok":true,"id"} or {"flag":"edit","ok":true,"id","edited"},
// with its "cid" if the frame had one.
func changeAnswer(kind, id string, edited int64, cid string) []byte {
	b := make([]byte, 0, 64+len(id)+len(cid))
	b = append(b, `{"flag":`...)
	b = appendString(b, kind)
	b = append(b, `,"ok":true,"id":`...)
	b = appendString(b, id)
	if kind == history.KindEdit {
		b = append(b, `,"edited":`...)
		b = strconv.AppendInt(b, edited, 10)
	}
	if cid != "" {
		b = append(b, `,"cid":`...)
		b = appendString(b, cid)
	}
	return append(b, '}')
}
