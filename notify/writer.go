package notify

import (
	"context"
	"time"
)

// The outbox writes of the hot path (a row per event as its first message is
// stored, a DELETE per init) are queued in memory and written by one
// goroutine, many at a time, in the order they were queued: a row is always
// in the table before its release or a cancel that follows it.

type opKind int

const (
	opHold    opKind = iota // insert the row of a new event, held for its grace period
	opRelease               // write the final batch into the row and make it due now
	opRewrite               // write the newest batch into the row, leaving it held (stopping)
	opCancel                // drop the account's held rows: it connected
)

type op struct {
	kind    opKind
	account string
	ev      Event
	at      time.Time // when it was queued (hold: the first message)
	nextAt  time.Time // hold: when another node may take the row as left behind
}

const (
	maxOps      = 100000 // queued writes beyond this are dropped (logged): the database is away
	maxPerWrite = 500    // rows of one INSERT, accounts of one DELETE
	retryWrites = 500 * time.Millisecond
)

// addLocked queues o. Caller holds mu.
func (n *Notifier) addLocked(o op) {
	if len(n.ops) >= maxOps {
		// Logged once per outage, not per write: an init storm would
		// flood the log. A cancel lost is covered by the sender's online
		// check; a held row lost is an event lost.
		if !n.full {
			n.full = true
			n.log.Error().Int("queued", len(n.ops)).Msg("notify: outbox unreachable for long; events dropped until it answers")
		}
		return
	}
	n.ops = append(n.ops, o)
	select {
	case n.opsIn <- struct{}{}:
	default:
	}
}

// writeOps writes the queued ops until ctx is done.
func (n *Notifier) writeOps(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.opsIn:
		}
		for n.writeQueued(ctx) && ctx.Err() == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(retryWrites):
			}
		}
	}
}

// writeQueued writes what is queued and reports whether some of it failed
// (it is then back at the head of the queue).
func (n *Notifier) writeQueued(ctx context.Context) (failed bool) {
	n.mu.Lock()
	ops := n.ops
	n.ops = nil
	n.busy = len(ops) > 0
	n.mu.Unlock()
	done := 0
	var err error
	for done < len(ops) && err == nil {
		var k int
		k, err = n.writeRun(ctx, ops[done:])
		done += k
	}
	n.mu.Lock()
	if err != nil {
		n.ops = append(ops[done:len(ops):len(ops)], n.ops...)
		n.log.Warn().Err(err).Int("queued", len(n.ops)).Msg("notify: outbox write failed; trying again")
	} else if len(n.ops) == 0 {
		n.full = false
	}
	n.busy = false
	n.mu.Unlock()
	return err != nil
}

// writeRun writes the run of ops of one kind at the head of ops (up to
// maxPerWrite) and returns how many it wrote.
func (n *Notifier) writeRun(ctx context.Context, ops []op) (int, error) {
	k := 1
	for k < len(ops) && k < maxPerWrite && ops[k].kind == ops[0].kind && ops[0].kind != opRelease && ops[0].kind != opRewrite {
		k++
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch ops[0].kind {
	case opHold:
		rows := make([]Held, 0, k)
		for _, o := range ops[:k] {
			body, err := encodeEvent(o.ev)
			if err != nil {
				return k, err // cannot happen for these types; not retried
			}
			rows = append(rows, Held{EventID: o.ev.EventID, Account: o.account, Payload: body, NextAt: o.nextAt, Created: o.at})
		}
		if err := n.out.Hold(wctx, rows); err != nil {
			return 0, err
		}
		return k, nil
	case opCancel:
		accounts := make([]string, 0, k)
		for _, o := range ops[:k] {
			accounts = append(accounts, o.account)
		}
		dropped, err := n.out.Cancel(wctx, accounts, ops[0].at)
		if err != nil {
			return 0, err
		}
		n.cancelled.Add(float64(dropped))
		return k, nil
	default: // opRelease, opRewrite
		o := ops[0]
		body, err := encodeEvent(o.ev)
		if err != nil {
			return 1, err
		}
		var due time.Time
		if o.kind == opRelease {
			due = o.at
		}
		if _, err := n.out.Release(wctx, o.ev.EventID, body, due); err != nil {
			return 0, err
		}
		if o.kind == opRelease {
			// Gone: an init dropped it, or another node sent it as left
			// behind. Either way it is not this node's to send.
			n.wakeSender()
		}
		return 1, nil
	}
}

// flush waits until the queued ops are written, for at most limit.
func (n *Notifier) flush(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		idle := len(n.ops) == 0 && !n.busy
		n.mu.Unlock()
		if idle {
			return
		}
		select {
		case n.opsIn <- struct{}{}:
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.mu.Lock()
	left := len(n.ops)
	n.mu.Unlock()
	if left > 0 {
		n.log.Error().Int("writes", left).Msg("notify: outbox writes not done at shutdown; their events are lost")
	}
}
