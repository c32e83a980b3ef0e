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
	if h.remote != nil {
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
	deliver := func(a string) {
		it := &message{h: h, m: offline.Message{To: a, From: from, Content: content, Group: group, ID: id, AddTime: now}, sa: sa}
		sa.add()
		d, err := h.table.Deliver(a, from, frame, it)
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
		deliver(a)
	}
	if h.remote == nil {
		return res, firstErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	where, err := h.remote.Locate(ctx, accounts)
	if err != nil {
		if !errors.Is(err, cluster.ErrUnavailable) { // (the bus logged the outage once)
			h.log.Warn().Err(err).Msg("cannot locate accounts on other nodes; storing for those not here")
		}
		where = nil
	}
	// One envelope per node; the first node of an account not here is the one
	// that stores it if its connection is gone meanwhile.
	type plan struct {
		store, nostore []string
	}
	byNode := map[string]*plan{}
	var order []string
	isLocal := make(map[string]bool, len(local))
	for _, a := range local {
		isLocal[a] = true
	}
	for _, a := range accounts {
		for i, n := range where[a] {
			p := byNode[n]
			if p == nil {
				p = &plan{}
				byNode[n] = p
				order = append(order, n)
			}
			if i == 0 && !isLocal[a] {
				p.store = append(p.store, a)
			} else {
				p.nostore = append(p.nostore, a)
			}
		}
	}
	reached := map[string]bool{}
	for _, n := range order {
		p := byNode[n]
		for _, part := range []struct {
			to    []string
			store bool
		}{{p.store, true}, {p.nostore, false}} {
			if len(part.to) == 0 {
				continue
			}
			env := cluster.Envelope{Kind: envKind(group), From: from, To: part.to, Group: group, Content: content, ID: id, AddTime: now, Store: part.store}
			ok, err := h.remote.Send(ctx, n, env)
			if err != nil || !ok {
				continue
			}
			for _, a := range part.to {
				reached[a] = true
			}
		}
	}
	for _, a := range remoteOnly {
		if reached[a] {
			res.Pushed++
			continue
		}
		deliver(a) // not connected anywhere we could reach: stored here
	}
	return res, firstErr
}

func envKind(group string) string {
	if group != "" {
		return "group"
	}
	return "msg"
}

// Receive handles a message from another node: an announcement for every
// connection here, or a message for the listed accounts' connections here.
func (h *Handler) Receive(env cluster.Envelope) {
	if env.Kind == "all" {
		n := h.table.Broadcast(hub.TextFrame(announcePayload(env.From, env.Content)))
		h.metrics.FramesOut("all", n)
		return
	}
	frame := hub.TextFrame(messagePayload(env.From, env.Content, env.Group, env.ID))
	for _, a := range env.To {
		// accepted: the sending node counted it as delivered.
		var it hub.Item = &message{h: h, m: offline.Message{To: a, From: env.From, Content: env.Content, Group: env.Group, ID: env.ID, AddTime: env.AddTime}, accepted: true}
		if !env.Store {
			it = &noStore{id: env.ID}
		}
		d, err := h.table.Deliver(a, env.From, frame, it)
		if err != nil {
			h.log.Error().Err(err).Str("account", a).Str("origin", env.Origin).Msg("message from another node could not be stored")
			continue
		}
		h.metrics.FramesOut(env.Kind, d.Pushed)
	}
}
