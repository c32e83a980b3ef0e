package handlers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"chatserver/cluster"
	"chatserver/history"
	"chatserver/hub"
)

// Receipts. A read frame's receipt goes to the connections that use the read
// state: those that have sent a read, unread or conversations frame. A legacy
// client sends none of them and so never gets a frame it does not know. Other
// nodes get the receipt as an order on the control channel (kind "read"),
// with the accounts in Receivers, not To: a node of an earlier version, which
// takes an unknown kind for a message to To, finds nobody to deliver it to.
//
// A group's receipts are aggregated: the reads of a group within
// groupReceiptEvery become, for each sender whose message was read, one frame
// {"flag":"read","group","id","count"}: how many members have read up to
// their newest message read, counted from the cursors at that moment.

// groupReceiptEvery is how often a group's reads are counted and told to the
// senders of the messages read.
const groupReceiptEvery = time.Second

// receipts is the read frames' state in the handler.
type receipts struct {
	wanting sync.Map // *hub.Conn -> struct{}: connections that get receipts

	// lateWait bounds the read frames waiting for another node's history
	// writer (read.go's lateWrite).
	lateWait lateWaits

	mu      sync.Mutex
	pending map[string]map[string]groupRead // group -> sender -> their newest message read
	armed   bool                            // a count is scheduled
}

type groupRead struct {
	seq int64
	id  string
}

// want marks c as a connection that gets receipts (until it closes).
func (r *receipts) want(c *hub.Conn) {
	if _, had := r.wanting.LoadOrStore(c, struct{}{}); !had && c.Removed() {
		r.wanting.Delete(c) // closed meanwhile: Closed has forgotten it already
	}
}

// forget drops a closed connection.
func (r *receipts) forget(c *hub.Conn) { r.wanting.Delete(c) }

func (r *receipts) wants(c *hub.Conn) bool {
	_, ok := r.wanting.Load(c)
	return ok
}

// sendTo gives payload to the receipt-wanting connections of accounts, here
// (but except) and on the other nodes.
func (r *receipts) sendTo(h *Handler, accounts []string, except *hub.Conn, payload []byte) {
	n := r.deliverHere(h, accounts, except, payload)
	h.metrics.FramesOut("read", n)
	remote := h.remoteNow()
	if remote == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	if err := remote.Control(ctx, cluster.Envelope{Kind: "read", Receivers: accounts, Content: string(payload)}); err != nil {
		h.log.Warn().Err(err).Msg("read receipt not sent to the other nodes")
	}
}

func (r *receipts) deliverHere(h *Handler, accounts []string, except *hub.Conn, payload []byte) int {
	n := 0
	seen := make(map[string]bool, len(accounts))
	for _, a := range accounts {
		if seen[a] {
			continue
		}
		seen[a] = true
		for _, c := range h.table.Conns(a) {
			if c != except && r.wants(c) && c.Send(payload) == nil {
				n++
			}
		}
	}
	return n
}

// receiveReceipt delivers a receipt another node sent.
func (h *Handler) receiveReceipt(env cluster.Envelope) {
	n := h.receipts.deliverHere(h, env.Receivers, nil, []byte(env.Content))
	h.metrics.FramesOut("read", n)
}

// groupRead notes that a member read group up to message (seq, id) of
// sender; the count goes out within groupReceiptEvery.
func (r *receipts) groupRead(h *Handler, group, sender string, seq int64, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string]map[string]groupRead{}
	}
	bySender := r.pending[group]
	if bySender == nil {
		bySender = map[string]groupRead{}
		r.pending[group] = bySender
	}
	if cur, ok := bySender[sender]; !ok || seq > cur.seq {
		bySender[sender] = groupRead{seq: seq, id: id}
	}
	if !r.armed {
		r.armed = true
		time.AfterFunc(groupReceiptEvery, func() { r.countGroups(h) })
	}
}

// countGroups sends the counts of the reads noted since the last time.
func (r *receipts) countGroups(h *Handler) {
	r.mu.Lock()
	pending := r.pending
	r.pending, r.armed = nil, false
	r.mu.Unlock()
	for group, bySender := range pending {
		for sender, g := range bySender {
			ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
			err := h.reads.FlushCursors(ctx)
			n := 0
			if err == nil {
				n, err = h.reads.Readers(ctx, history.GroupConv(group), g.seq, sender)
			}
			cancel()
			if err != nil {
				h.log.Warn().Err(err).Str("group", group).Msg("group read receipt not counted")
				continue
			}
			r.sendTo(h, []string{sender}, nil, readPayload("", "", group, g.id, n, false))
		}
	}
}

// lateWaits is a count of waiting read frames, at most maxLateWaits.
type lateWaits struct{ n atomic.Int32 }

func (l *lateWaits) tryAcquire() bool {
	if l.n.Add(1) > maxLateWaits {
		l.n.Add(-1)
		return false
	}
	return true
}

func (l *lateWaits) release() { l.n.Add(-1) }
