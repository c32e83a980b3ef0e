package handlers

import (
	"sync/atomic"

	"chatserver/hub"
	"chatserver/offline"
)

// Receiver acknowledgements, opt-in per connection with {"flag":"init",...,
// "ack":true}: the connection answers {"flag":"ack","id":...} for what it got
// (cumulative: an ack covers that message and every earlier one). Messages it
// has not acknowledged when it closes go back to the offline pool and come again
// at the next init, in order; offline rows pushed to it are marked sent when
// acknowledged, not when written. Connections without "ack" keep the legacy
// behaviour: written means delivered.

// message is a live message on its way to one recipient: hub.Item for the
// table. ack, if the sender asked for one, hears the first outcome of this
// copy (a later Store, of a copy pushed and then not acknowledged, is not one).
type message struct {
	h        *Handler
	m        offline.Message
	ack      *senderAck
	reported atomic.Bool
	// accepted: another node took the message already (it counted it as
	// delivered), so storing it here must not be refused for a full queue.
	accepted bool
}

func (it *message) ID() string { return it.m.ID }

func (it *message) Store() error {
	enqueue := it.h.store.Enqueue
	if it.accepted {
		enqueue = it.h.store.EnqueueAccepted
	}
	t, err := enqueue(it.m)
	if err == nil {
		it.report(true, t)
	}
	return err
}

// Requeue stores a message that went through already (written to a connection
// that closed without acknowledging it, or held for one): it must not be
// refused for a full queue, or it is lost.
func (it *message) Requeue() error {
	t, err := it.h.store.EnqueueAccepted(it.m)
	if err == nil {
		it.report(true, t)
	}
	return err
}

// Released: a copy held for a connection in the last pass of its drain was
// written to it.
func (it *message) Released() { it.report(false, 0) }

func (it *message) report(stored bool, ticket uint64) {
	if it.ack != nil && it.reported.CompareAndSwap(false, true) {
		it.ack.outcome(stored, ticket)
	}
}

// drainedRow is an offline row pushed to an acknowledging connection: it stays
// in the table until acknowledged, so there is nothing to store again.
type drainedRow struct {
	id  string
	row int64
}

func (r *drainedRow) ID() string   { return r.id }
func (r *drainedRow) Store() error { return nil }

// ack handles {"flag":"ack","id":...} from an acknowledging connection.
func (h *Handler) ack(c *hub.Conn, f *Frame) error {
	if _, e := bound(c); e != nil {
		return e
	}
	if f.ID == "" {
		return newError(CodeMissingField, "id is required: the id of the last message received")
	}
	if !c.Acks() {
		return nil // a legacy connection has nothing to acknowledge; ignore
	}
	var rows []int64
	for _, it := range c.Ack(f.ID) {
		if r, ok := it.(*drainedRow); ok {
			rows = append(rows, r.row)
		}
	}
	if len(rows) > 0 {
		h.marker.add(rows)
	}
	return nil
}
