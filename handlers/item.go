package handlers

import (
	"sync/atomic"
	"time"

	"chatserver/offline"
)

// The items handed to the hub with every copy of a message (hub.Item): what
// the table stores if no connection takes the copy, or stores again if an
// acknowledging connection closes before its receiver ack.

// message is a live message on its way to one recipient: hub.Item for the
// table. sa, the sender's ack if it asked for one, hears the first outcome of
// this copy (a later Store, of a copy pushed and then not acknowledged by the
// receiver, is not one).
type message struct {
	h        *Handler
	m        offline.Message
	sa       *senderAck // the sender's ack, if it asked for one
	reported atomic.Bool
	// accepted: another node took the message already (it counted it as
	// delivered), so storing it here must not be refused for a full queue.
	accepted bool
	// stored, if set, hears the ticket of the copy once it is queued for the
	// offline table (crossOrder keeps later messages behind it), and calls
	// done once the sender may hear "stored": committed, and the recipient's
	// node asked to read it before anything sent after the ack.
	stored func(account string, ticket uint64, done func())
	// sentAt: crossOrder's mark of a copy with the duty sent to another node.
	sentAt time.Time
}

func (it *message) ID() string { return it.m.ID }

func (it *message) Store() error {
	enqueue := it.h.queue.Enqueue
	if it.accepted {
		enqueue = it.h.queue.EnqueueAccepted
	}
	t, err := enqueue(it.m)
	if err == nil {
		if it.h.notifier != nil {
			// Stored because no connection took the copy: the one place
			// that knows (the node that stores emits, with several nodes).
			it.h.notifier.Stored(it.m)
		}
		if it.stored != nil {
			it.stored(it.m.To, t, func() { it.report(true, t) })
		} else {
			it.report(true, t)
		}
	}
	return err
}

// Requeue stores a message that went through already (written to a connection
// that closed without acknowledging it, or held for one): it must not be
// refused for a full queue, or it is lost.
func (it *message) Requeue() error {
	if !it.h.changes.apply(&it.m) { // recalled since it went through (recall.go)
		it.report(true, 0)
		return nil
	}
	t, err := it.h.queue.EnqueueAccepted(it.m)
	if err == nil {
		if it.h.notifier != nil {
			// Its connection closed without the receiver's ack: stored for
			// an account that may have no live connection left (the sender
			// asks the account map before posting).
			it.h.notifier.Stored(it.m)
		}
		if it.stored != nil {
			it.stored(it.m.To, t, func() { it.report(true, t) })
		} else {
			it.report(true, t)
		}
	}
	return err
}

// Released: a copy held for a connection in the last pass of its drain was
// written to it.
func (it *message) Released() { it.report(false, 0) }

// fail: the copy could be neither delivered nor stored; the sender is told
// to send again.
func (it *message) fail() {
	if it.sa != nil && it.reported.CompareAndSwap(false, true) {
		it.sa.failed()
	}
}

func (it *message) report(stored bool, ticket uint64) {
	if it.sa != nil && it.reported.CompareAndSwap(false, true) {
		it.sa.outcome(stored, ticket)
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

// noStore is a copy another node is responsible for: if the connection is gone,
// there is nothing to store here.
type noStore struct{ id string }

func (n *noStore) ID() string   { return n.id }
func (n *noStore) Store() error { return nil }
