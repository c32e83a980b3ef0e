package handlers

import (
	"context"
	"errors"
	"time"

	"chatserver/cluster"
	"chatserver/hub"
	"chatserver/offline"
)

// Delivery. Every message goes through here: msg and group frames and the side
// API's Push and PushGroup call fanout, which hands each copy for an account on
// this node to the table (hub.Table.Deliver: pushed, held behind a drain, or
// stored offline) and publishes one envelope per other node; Receive is the
// other end, for envelopes from other nodes. Each copy travels with an item
// (item.go) that the table stores if no connection takes it, and that reports
// its outcome to the sender's ack (sender_ack.go).

// remoteTimeout bounds the Redis round trips of one message's routing.
const remoteTimeout = 2 * time.Second

// fanout delivers one message to accounts wherever they are connected: here
// through the table (pushed, or stored when they are nowhere), on other nodes
// by one publish per node. An account connected only elsewhere is stored by the
// first node that receives it if that node no longer has its connection; if no
// node receives it, it is stored here. Routing failures fall back to storing.
// With sa (a sender waiting for its ack), every local copy reports to it.
func (h *Handler) fanout(from, content, group, id string, accounts []string, now int64, sa *senderAck) (res GroupResult, firstErr error) {
	local := accounts
	var remoteOnly []string
	remote := h.remoteNow() // one for the whole message
	if remote != nil {
		local, remoteOnly = nil, nil
		for _, a := range accounts {
			if h.table.Online(a) {
				local = append(local, a)
			} else {
				remoteOnly = append(remoteOnly, a)
			}
		}
	}
	frame := hub.TextFrame(messagePayload(from, content, group, id))
	newCopy := func(a string) *message {
		return &message{h: h, m: offline.Message{To: a, From: from, Content: content, Group: group, ID: id, AddTime: now}, sa: sa}
	}
	deliver := func(it *message) {
		sa.add()
		d, err := h.table.Deliver(it.m.To, from, frame, it)
		switch {
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
			it.report(false, 0) // the whole message fails: the sender hears the error
		case d.Stored && d.Pushed == 0:
			res.Stored++
		case d.Held: // reports when written (or stored)
			res.Pushed++
		default:
			res.Pushed++
			h.metrics.FramesOut(envKind(group), d.Pushed)
			it.report(false, 0)
		}
	}
	for _, a := range local {
		it := newCopy(a)
		if remote != nil {
			// Stored after all (its connection closed before the copy was
			// written, or without acknowledging it): the next message may
			// find the account on another node, and must not get there
			// first (crossOrder).
			it.stored = h.order.storedHere
		}
		if h.order.queueStore(a, it, frame) {
			// Copies sent to another node before the account connected
			// here are not settled yet: this one comes after them.
			sa.add()
			res.Pushed++
			continue
		}
		deliver(it)
	}
	if remote == nil {
		return res, firstErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	where, err := remote.Locate(ctx, accounts)
	if err != nil {
		if !errors.Is(err, cluster.ErrUnavailable) { // (the bus logged the outage once)
			h.log.Warn().Err(err).Msg("cannot locate accounts on other nodes; storing for those not here")
		}
		where = nil
	}
	// One envelope per node; the first node of an account not here is the one
	// that stores it if its connection is gone meanwhile (the copy with the
	// duty), unless the order across nodes says to store it here (crossOrder).
	type plan struct {
		store, nostore, drain []string
		acks                  []func() // of stored messages the drain requests cover
	}
	byNode := map[string]*plan{}
	var order []string
	at := func(n string) *plan {
		p := byNode[n]
		if p == nil {
			p = &plan{}
			byNode[n] = p
			order = append(order, n)
		}
		return p
	}
	sentAt := map[string]time.Time{} // crossOrder's mark of each copy with the duty
	isLocal := make(map[string]bool, len(local))
	for _, a := range local {
		isLocal[a] = true
	}
	for _, a := range accounts {
		nodes := where[a]
		if len(nodes) == 0 {
			continue
		}
		if !isLocal[a] {
			send, drain, acks, mark := h.order.decide(a, nodes)
			if !send {
				continue // stored here, below
			}
			sentAt[a] = mark
			p := at(nodes[0])
			p.store = append(p.store, a)
			if drain {
				p.drain = append(p.drain, a)
				p.acks = append(p.acks, acks...)
			}
			nodes = nodes[1:]
		}
		for _, n := range nodes {
			p := at(n)
			p.nostore = append(p.nostore, a)
		}
	}
	// Every copy sent to another node reports to the sender's ack when that
	// node answers: pushed there, or stored (committed) there; without an
	// answer in time, or if the envelope cannot be sent, it is stored here.
	sent := map[string]bool{}
	for _, n := range order {
		p := byNode[n]
		for _, part := range []struct {
			to    []string
			store bool
		}{{p.store, true}, {p.nostore, false}} {
			if len(part.to) == 0 {
				continue
			}
			copies := make([]*message, len(part.to))
			for i, a := range part.to {
				copies[i] = newCopy(a)
				copies[i].accepted = true
				if part.store {
					copies[i].stored = h.order.storedHere
					copies[i].sentAt = sentAt[a]
					sent[a] = true
				}
				sa.add()
				res.Pushed++ // counted as delivered by the node that has the connection
			}
			store := part.store
			settle := func(out []cluster.Outcome) {
				for i, o := range out {
					if !store {
						// Another connection of an account that is here,
						// or whose copy with the duty went elsewhere: that
						// copy covers it, whatever this node did. But if
						// this node did not write it to a connection, the
						// next message must not reach one there first.
						if o != cluster.Pushed {
							h.order.missedThere(copies[i].m.To, n)
						}
						copies[i].report(false, 0)
						continue
					}
					h.settleRemote(copies[i], o, frame)
					h.order.answered(copies[i].m.To, o == cluster.Stored, copies[i].sentAt)
				}
			}
			env := cluster.Envelope{Kind: envKind(group), From: from, To: part.to, Group: group, Content: content, ID: id, AddTime: now, Store: part.store}
			if part.store {
				env.Drain = p.drain
			}
			if err := remote.Send(ctx, n, env, settle); err != nil {
				if !store {
					settle(make([]cluster.Outcome, len(part.to)))
				} else {
					h.notSent(copies, frame)
				}
			}
			if part.store {
				release(p.acks)
			}
		}
	}
	for _, a := range remoteOnly {
		if !sent[a] {
			// Not connected anywhere we could reach, or behind a message
			// stored here: stored here.
			it := newCopy(a)
			it.stored = h.order.storedHere
			if h.order.queueStore(a, it, frame) {
				sa.add() // reports once stored, behind the envelopes in flight
				res.Stored++
				continue
			}
			deliver(it)
		}
	}
	return res, firstErr
}

// notSent delivers here the copies with the storing duty whose envelope could
// not be sent, each behind the copies to its account still in flight (which
// may be stored here when they time out, and must come first).
func (h *Handler) notSent(copies []*message, frame []byte) {
	for _, c := range copies {
		h.order.answered(c.m.To, false, c.sentAt)
		if !h.order.queueStore(c.m.To, c, frame) {
			h.settleRemote(c, cluster.NotTaken, frame)
		}
	}
}

// deliverHere hands a copy that waited (behind copies in flight, or for
// another node that did not take it) to the table: pushed to the account's
// connection here, held behind its drain, or stored. Its sender hears the
// outcome; a failure to store fails it.
func (h *Handler) deliverHere(it *message, frame []byte) {
	d, err := h.table.Deliver(it.m.To, it.m.From, frame, it)
	switch {
	case err != nil:
		h.log.Error().Err(err).Str("to", it.m.To).Str("id", it.m.ID).Msg("message could be neither delivered nor stored here")
		it.fail()
	case d.Stored && d.Pushed == 0, d.Held: // reports when committed or written
	default:
		it.report(false, 0)
	}
}

// settleRemote reports what another node did with a copy, or delivers the
// copy here when that node did not take it: to the recipient's connection if
// it is here now (messages to it sent since wait behind this one, see
// queueStore), else to the offline table.
func (h *Handler) settleRemote(it *message, o cluster.Outcome, frame []byte) {
	switch o {
	case cluster.Pushed, cluster.Gone:
		it.report(false, 0)
	case cluster.Stored:
		it.report(true, 0) // committed there
	default:
		if h.table.Online(it.m.To) {
			h.deliverHere(it, frame)
			return
		}
		if err := it.Store(); err != nil {
			h.log.Error().Err(err).Str("to", it.m.To).Str("id", it.m.ID).Msg("message another node did not take could not be stored here")
			it.fail()
		}
	}
}

// redrain makes account's connections here read their backlog again, holding
// live frames for them meanwhile: another node stored messages for the
// account while it was connected here (see crossOrder). A connection whose
// drain is running reads once more before it goes live.
func (h *Handler) redrain(account string) {
	for _, c := range h.table.Conns(account) {
		seq, _, start, err := h.table.Bind(c, account, "", 0)
		if err != nil || !start {
			continue
		}
		h.held.start(c)
		h.drains.submit(drainJob{c: c, account: account, seq: seq})
	}
}

func envKind(group string) string {
	if group != "" {
		return "group"
	}
	return "msg"
}

// Receive handles a message from another node: an announcement for every
// connection here, an order to close an account's connections here, a read
// receipt for the listed accounts' connections here that take it
// (receipts.go), or a message for the listed accounts' connections here.
// reply, when the sending node waits for the outcome, hears each copy's:
// pushed once written to a connection, stored once committed.
func (h *Handler) Receive(env cluster.Envelope, reply *cluster.Reply) {
	switch env.Kind {
	case "all":
		n := h.table.Broadcast(hub.TextFrame(announcePayload(env.From, env.Content)), h.cfg.AnnounceToUnbound)
		h.metrics.FramesOut("all", n)
		return
	case "read":
		h.receiveReceipt(env)
		return
	case "disconnect":
		for _, a := range env.To {
			n := h.closeAccount(a, env.Content)
			h.log.Info().Str("account", a).Int("closed", n).Str("origin", env.Origin).Msg("account disconnected by the site")
		}
		return
	case "recall", "edit":
		h.receiveChange(env, reply)
		return
	}
	for _, a := range env.Drain {
		h.redrain(a)
	}
	if env.Kind == cluster.KindDrain {
		for i, a := range env.To {
			h.redrain(a)
			reply.Report(i, cluster.Pushed)
		}
		return
	}
	frame := hub.TextFrame(messagePayload(env.From, env.Content, env.Group, env.ID))
	for i, a := range env.To {
		if !env.Store {
			// Another copy has the storing duty: this one is only for the
			// connections here.
			d, err := h.table.Deliver(a, env.From, frame, &noStore{id: env.ID})
			if err == nil && (d.Pushed > 0 || d.Held) {
				h.metrics.FramesOut(env.Kind, d.Pushed)
				reply.Report(i, cluster.Pushed)
			} else {
				reply.Report(i, cluster.Gone)
			}
			continue
		}
		var sa *senderAck
		if reply != nil {
			sa = &senderAck{h: h, notify: func(status string) {
				switch status {
				case "pushed":
					reply.Report(i, cluster.Pushed)
				case "stored":
					if h.spooledHere(a) {
						// On this node's disk, where the drain of another
						// node cannot read it: the sender's node stores it
						// too (one row per message once both are in).
						reply.Report(i, cluster.NotTaken)
						return
					}
					reply.Report(i, cluster.Stored)
				default: // queued, not committed in time: the sender stores it too (once per id)
					reply.Report(i, cluster.NotTaken)
				}
			}}
		}
		// accepted: the sending node counts on this node to take it.
		it := &message{h: h, m: offline.Message{To: a, From: env.From, Content: env.Content, Group: env.Group, ID: env.ID, AddTime: env.AddTime}, sa: sa, accepted: true}
		sa.add()
		d, err := h.table.Deliver(a, env.From, frame, it)
		switch {
		case err != nil:
			h.log.Error().Err(err).Str("account", a).Str("origin", env.Origin).Msg("message from another node could not be stored here; its node stores it")
			it.fail()
		case d.Stored && d.Pushed == 0, d.Held: // reported when committed or written
		default:
			h.metrics.FramesOut(env.Kind, d.Pushed)
			it.report(false, 0)
		}
		sa.seal()
	}
}

// spooledHere: rows for account wait in this node's spool (MySQL unreachable).
func (h *Handler) spooledHere(account string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	held, err := h.queue.SpoolHolds(ctx, account)
	return err == nil && held
}
