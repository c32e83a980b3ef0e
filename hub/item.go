package hub

// Item is one copy of a message on its way to an account's connections (see
// Deliver). Store puts it in the offline pool when no connection takes it live.
// A connection whose client acknowledges what it receives (init with
// "ack":true) keeps it until the receiver acknowledges it; if the connection
// closes first, Store puts the message back in the offline pool (a no-op for a
// row that is still there). The table calls Store under the account's lock,
// in send order.
type Item interface {
	ID() string
	Store() error
}

// Requeuer is an Item that stores itself differently when it went through
// already (written to a connection that then closed, or held for one): such a
// message was accepted, and storing it must not be refused for a full queue.
type Requeuer interface{ Requeue() error }

// requeue is how the table stores an item that went through already.
func requeue(it Item) func() error {
	if r, ok := it.(Requeuer); ok {
		return r.Requeue
	}
	return it.Store
}

// Releaser is implemented by items that want to know when a message held for
// a draining connection was written to it (a sender waiting for its sender ack).
type Releaser interface{ Released() }

func released(it Item) {
	if r, ok := it.(Releaser); ok {
		r.Released()
	}
}
