package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"

	"chatserver/hub"
)

// Sender acknowledgements. A client that puts its own "cid" on a msg or group
// frame gets {"flag":"ack","cid":...,"id":...,"status":"pushed"|"stored"} once
// the message is written to every live connection of the recipient or
// committed to the offline table, or an error frame carrying the cid. A cid the
// same sender used before is answered with the first ack and not delivered
// again. Legacy frames (no cid) get no ack, as before.

// messageID is the id of a message sent with a cid: derived from the sender and
// the cid, so a retry after a reconnect, or to another node, or after a
// restart, carries the same id and receivers can drop the duplicate.
func messageID(from, cid string) string {
	sum := sha256.Sum256([]byte(from + "\x00" + cid))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func senderAckPayload(cid, id, status string) []byte {
	b := make([]byte, 0, 48+len(cid)+len(id))
	b = append(b, `{"flag":"ack","cid":`...)
	b = appendString(b, cid)
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"status":`...)
	b = appendString(b, status)
	return append(b, '}')
}

// senderAck acknowledges one message to its sender once every copy of it has
// an outcome: written to a live connection of the recipient ("pushed"), or
// committed to the offline table ("stored", which wins if any copy was
// stored). Nothing here blocks the connection's handler flow: a copy held for
// a connection that is about to go live, and a copy waiting for the database,
// report when they are done.
type senderAck struct {
	h             *Handler
	c             *hub.Conn
	from, cid, id string

	mu      sync.Mutex
	pending int  // copies without an outcome yet
	sealed  bool // the fan-out is over: no copy will be added
	done    bool // answered or cancelled
	stored  bool
	failure bool   // a copy could be neither delivered nor stored
	ticket  uint64 // the last stored copy's, for the writer's notice

	// notify, for the side API, takes the answer instead of a connection:
	// "pushed", "stored", or "" when the commit did not come in time.
	notify func(status string)
}

// newAPIAck is the ack of a side API call: no connection, no cid; the answer
// comes on the channel once every copy has its outcome.
func (h *Handler) newAPIAck() (*senderAck, <-chan string) {
	ch := make(chan string, 1)
	return &senderAck{h: h, notify: func(status string) { ch <- status }}, ch
}

// openSenderAcks are the senders' acks not yet answered, by sender and cid: a
// retry of one of them (after a reconnect) is not delivered again, and the
// answer goes to the connection the retry came on.
type openSenderAcks struct {
	mu sync.Mutex
	m  map[string]*senderAck
}

func senderAckKey(from, cid string) string { return from + "\x00" + cid }

// startSenderAck answers a retry from what is remembered, or starts the ack of a
// new message. retry is true when the message must not be delivered again.
func (h *Handler) startSenderAck(c *hub.Conn, from, cid, id string) (a *senderAck, retry bool) {
	if status, ok := h.sentCIDs.seen(from, cid); ok && status != "" {
		h.reply(c, senderAckPayload(cid, id, status))
		return nil, true
	}
	k := senderAckKey(from, cid)
	h.senderAcks.mu.Lock()
	defer h.senderAcks.mu.Unlock()
	if a := h.senderAcks.m[k]; a != nil {
		a.mu.Lock()
		a.c = c
		a.mu.Unlock()
		return nil, true
	}
	a = &senderAck{h: h, c: c, from: from, cid: cid, id: id}
	h.senderAcks.m[k] = a
	return a, false
}

func (h *Handler) senderAckDone(a *senderAck) {
	k := senderAckKey(a.from, a.cid)
	h.senderAcks.mu.Lock()
	if h.senderAcks.m[k] == a {
		delete(h.senderAcks.m, k)
	}
	h.senderAcks.mu.Unlock()
}

// add counts a copy about to be delivered. A nil ack (no cid) ignores it all.
func (a *senderAck) add() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.pending++
	a.mu.Unlock()
}

// outcome records what became of one copy.
func (a *senderAck) outcome(stored bool, ticket uint64) {
	a.mu.Lock()
	a.pending--
	if stored {
		a.stored = true
		a.ticket = max(a.ticket, ticket)
	}
	ready := a.readyLocked()
	a.mu.Unlock()
	if ready {
		a.answer()
	}
}

// failed records a copy that could be neither delivered nor stored.
func (a *senderAck) failed() {
	a.mu.Lock()
	a.pending--
	a.failure = true
	ready := a.readyLocked()
	a.mu.Unlock()
	if ready {
		a.answer()
	}
}

// seal says the fan-out is over; the ack goes once the copies are settled.
func (a *senderAck) seal() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.sealed = true
	ready := a.readyLocked()
	a.mu.Unlock()
	if ready {
		a.answer()
	}
}

// cancel drops the ack: the sender is told of an error instead, and may send
// the cid again.
func (a *senderAck) cancel() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.done = true
	a.mu.Unlock()
	if a.notify == nil {
		a.h.senderAckDone(a)
	}
}

// wait takes a side API call's answer: stored or pushed, or unavailable when
// the message is queued but was not committed in time (it still will be).
func (h *Handler) waitAPIAck(ch <-chan string) (stored bool, err error) {
	select {
	case status := <-ch:
		if status == statusFailed {
			return false, newError(CodeUnavailable, "the message could be neither delivered nor stored; send it again")
		}
		if status != "" {
			return status == "stored", nil
		}
	case <-time.After(h.cfg.DrainTimeout + 5*time.Second):
	}
	return true, newError(CodeUnavailable, "the message is queued but not yet stored; it will be delivered once the database answers")
}

func (a *senderAck) readyLocked() bool {
	if !a.sealed || a.pending > 0 || a.done {
		return false
	}
	a.done = true
	return true
}

func (a *senderAck) answer() {
	if a.failure {
		a.finish(statusFailed)
		return
	}
	if !a.stored {
		a.finish("pushed")
		return
	}
	a.h.queue.NotifyWritten(a.ticket, a.h.cfg.DrainTimeout, func(written bool) {
		if written {
			a.finish("stored")
		} else {
			a.finish("")
		}
	})
}

// statusFailed is finish's answer for a message a copy of which could be
// neither delivered nor stored.
const statusFailed = "failed"

// finish delivers the answer: "pushed", "stored", or "" when the commit did
// not come in time. The side API takes it on its channel; a connection gets
// the ack frame, or an unavailable error carrying the cid.
func (a *senderAck) finish(status string) {
	switch {
	case a.notify != nil:
		a.notify(status)
	case status == statusFailed:
		a.h.senderAckDone(a)
		a.h.metrics.Error(CodeUnavailable)
		a.h.reply(a.conn(), errorPayload(newError(CodeUnavailable,
			"the message could be neither delivered nor stored; send it again"), a.cid))
	case status != "":
		a.h.sentCIDs.remember(a.from, a.cid, status)
		a.h.senderAckDone(a)
		a.h.reply(a.conn(), senderAckPayload(a.cid, a.id, status))
	default:
		// Queued but not yet committed: do not claim it is durable. It will
		// still be written (and delivered) once the database answers; a resend
		// of the cid is delivered once more with the same id, which the
		// offline table and the receiver both drop.
		a.h.senderAckDone(a)
		a.h.metrics.Error(CodeUnavailable)
		a.h.reply(a.conn(), errorPayload(newError(CodeUnavailable,
			"the message is queued but not yet stored; it will be delivered once the database answers"), a.cid))
	}
}

// conn is where the answer goes: the connection of the latest attempt.
func (a *senderAck) conn() *hub.Conn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.c
}
