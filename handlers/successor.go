package handlers

import (
	"context"
	"errors"
	"time"

	"chatserver/cluster"
)

// Handover between two processes on one port (README "Upgrades"). The old
// process closes its connections in batches while the new one takes them,
// so for some seconds an account may be on either. With several nodes
// (cluster.enabled) the new process is one more node and messages reach it
// through Redis. A single node has no such route; during the handover each
// process gets one to the other (SetSuccessor): a Remote whose only other
// node is the other process, reached over HTTP (package handover). A message
// for an account connected on the other process then goes there (pushed to
// its connection, or stored there for its next init), after the messages sent
// before it, instead of being stored here and read only at the account's
// next init. The receiving end is Here and Take; PredecessorDone, in the new
// process, ends it.

// exactLocator is a Remote whose Locate routes rather than knows (a
// handover's route sends everything not here to the other process, which
// stores what it does not have): LocateExact asks, for online.
type exactLocator interface {
	LocateExact(ctx context.Context, accounts []string) (map[string][]string, error)
}

// remoteRef holds a Remote in an atomic pointer.
type remoteRef struct{ Remote }

// remoteNow is the route to other nodes, or nil (one node, no handover).
func (h *Handler) remoteNow() Remote {
	if r := h.remote.Load(); r != nil {
		return r.Remote
	}
	return nil
}

// ErrHasRemote: SetSuccessor on a node that routes to other nodes already
// (cluster.enabled): the new process is reached as one of them.
var ErrHasRemote = errors.New("handlers: this node routes to other nodes already")

// SetSuccessor routes messages for accounts not connected here to r from now
// on (a handover on a single node).
func (h *Handler) SetSuccessor(r Remote) error {
	if !h.remote.CompareAndSwap(nil, &remoteRef{r}) {
		return ErrHasRemote
	}
	return nil
}

// ClearSuccessor stops routing through r (the old process of a handover is
// done); false if r is not the route.
func (h *Handler) ClearSuccessor(r Remote) bool {
	cur := h.remote.Load()
	if cur == nil || cur.Remote != r {
		return false
	}
	return h.remote.CompareAndSwap(cur, nil)
}

// Local reports whether account has a connection on this node.
func (h *Handler) Local(account string) bool { return h.table.Online(account) }

// Here reports, for each account, whether it has a connection on this node
// (the new process answering the old one's Locate).
func (h *Handler) Here(accounts []string) []bool {
	out := make([]bool, len(accounts))
	for i, a := range accounts {
		out[i] = h.table.Online(a)
	}
	return out
}

// Take hands env to Receive (each copy reaches the table before Take returns,
// so envelopes taken one after another keep their order) and returns where
// the copies' outcomes come: one slice, once each copy has one. Envelopes
// without outcomes (all, disconnect) give a channel that never sends.
func (h *Handler) Take(env cluster.Envelope) <-chan []cluster.Outcome {
	got := make(chan []cluster.Outcome, 1)
	switch {
	case env.Kind == "all" || env.Kind == "disconnect" || env.Kind == "read":
		h.Receive(env, nil)
	case len(env.To) > 0:
		h.Receive(env, cluster.NewReply(len(env.To), func(out []cluster.Outcome) { got <- out }))
	}
	return got
}

// MarkStart notes the offline table's highest row id as this process starts,
// for PredecessorDone.
func (h *Handler) MarkStart(ctx context.Context) error {
	if h.rowMarks == nil {
		return nil
	}
	id, err := h.rowMarks.RowMark(ctx)
	if err != nil {
		return err
	}
	h.startMark.Store(id)
	return nil
}

// PredecessorDone: the process this one took over from has closed its last
// connection and committed its last offline rows. Rows it stored for
// accounts that were connected here by then (a message that crossed their
// move) are read again by those connections now, as an init would, and once
// more a little later.
func (h *Handler) PredecessorDone() {
	if h.rowMarks == nil {
		return
	}
	after := h.startMark.Load()
	pass := func() {
		h.redrainAfter(after, "the previous process handed over: connections here read what it stored for them")
	}
	pass()
	time.AfterFunc(rejoinAgain, pass)
}
