package handlers

import (
	"context"
	"time"

	"chatserver/cluster"
	"chatserver/groups"
	"chatserver/offline"
	"chatserver/presence"
)

// Queue is the offline queue (offline.Writer): a copy no connection takes
// waits here until the batch writer commits it to the offline table.
type Queue interface {
	Enqueue(m offline.Message) (ticket uint64, err error)
	// EnqueueAccepted queues a message the sender was already told about
	// (requeued after an unacknowledged push); never refused for a full queue.
	EnqueueAccepted(m offline.Message) (ticket uint64, err error)
	// Reserve admits n rows of message id from sender from, all or nothing
	// (offline.ErrBusy); Release gives back what the fan-out did not use.
	Reserve(from, id string, n int) error
	Release(id string)
	// NotifyWritten calls fn once the message with ticket is committed (true)
	// or after timeout (false); Flush waits until everything queued before it
	// is committed.
	NotifyWritten(ticket uint64, timeout time.Duration, fn func(written bool))
	Flush(ctx context.Context) error
	// SpoolHolds reports whether rows for account wait in the spool (MySQL
	// unreachable when they were written): the backlog cannot be read whole.
	SpoolHolds(ctx context.Context, account string) (bool, error)
}

// Backlog is the offline table (offline.Store) as the init drain reads it: an
// account's pending rows, oldest first, marked sent once delivered.
type Backlog interface {
	HasPending(ctx context.Context, account string) (bool, error)
	Pending(ctx context.Context, account, from string, afterID int64, limit int) (rows []offline.Row, next int64, more bool, err error)
	MarkSent(ctx context.Context, ids []int64) error
}

// Presence is the account map shared with other nodes (Redis) or its embedded
// stand-in. Register and Unregister must not block on the network.
type Presence interface {
	Register(account, conn string)
	Unregister(account, conn string, last bool)
	Lookup(ctx context.Context, account string) ([]presence.Entry, error)
}

// Groups gives a group's members (cached).
type Groups interface {
	Get(ctx context.Context, group string) (*groups.Set, error)
}

// Verifier checks the token an init or an auth frame presents for account
// (auth.mode jwt). It returns until when the token is accepted (a connection
// that sends no newer one is closed after that), or an error saying why it is
// refused.
type Verifier interface {
	Verify(token, account string) (until time.Time, err error)
}

// Remote carries messages to accounts connected on other nodes (cluster.Bus).
// nil: one node, every account is here or offline.
type Remote interface {
	Locate(ctx context.Context, accounts []string) (map[string][]string, error)
	// Send queues env for node; done hears each recipient's outcome there
	// (or NotTaken after the confirmation timeout). On an error done is not
	// called.
	Send(ctx context.Context, node string, env cluster.Envelope, done func([]cluster.Outcome)) error
	Broadcast(ctx context.Context, env cluster.Envelope) error
	// Control sends an order (kind "disconnect") to every other node.
	Control(ctx context.Context, env cluster.Envelope) error
	// Where lists the live nodes account is connected on besides this one.
	Where(ctx context.Context, account string) ([]string, error)
}

// Notifier hears of the messages stored because their recipient had no live
// connection, and of accounts that connect (notify.Notifier): the site is told
// of the first unless the second follows soon. nil: notifications off.
// Stored is called under the hub's account lock: it must not block, nor call
// back into the table.
type Notifier interface {
	Stored(m offline.Message)
	Online(account string)
	// Offline: account's last connection on this node closed.
	Offline(account string)
}
