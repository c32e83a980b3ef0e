package handlers

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"chatserver/cluster"
)

// Order across nodes. One node keeps each sender's order to a recipient by
// deciding, under the account's lock, whether a message is pushed or stored
// (hub.Table). Across nodes the two can happen on different machines: a
// message stored here (its recipient's node did not answer, or the recipient
// was nowhere) must not be overtaken by a later one pushed live to the node
// the recipient is on now. So, for each recipient not on this node that a
// message from here was stored for:
//
//   - until that row is committed, later messages to it are stored too (in
//     order, behind it);
//   - once committed, the recipient's node is asked to drain the account
//     (an envelope of kind "drain"), or the next message carries the request
//     (Envelope.Drain): that node holds live frames for the account's
//     connections while it reads the backlog again, so the stored messages
//     come first, and a message sent after the request, in the same stream,
//     comes after them;
//   - while a message is in flight to one node, the next one for the same
//     recipient goes to the same node or is stored; and it is stored if a
//     copy without the storing duty of a message in flight found no live
//     connection on one of the other nodes (the account's init there was
//     reading its backlog, which cannot hold a row still in flight): the
//     next copy would reach that connection live, ahead of the stored one;
//   - and it is stored if a message in flight was sent half a confirmation
//     timeout ago or more: the receiving node may have left it to us (read
//     too late, or behind one that was; cluster.Bus.late), and takes a later
//     envelope only once it is sent a timeout after the one it left. A node
//     frozen while a message was in flight (SIGSTOP, a long GC pause) sends
//     the next ones on waking, before it has seen the first one time out.
//
// An account that is nowhere needs nothing: its next init reads every
// committed row (a node writes an account's registration before its drain
// reads the backlog, see drain.go).
type crossOrder struct {
	h  *Handler
	mu sync.Mutex
	m  map[string]*recipientRoute
	// size is len(m), read without the lock: a message to an account
	// connected here skips the lock while nothing is tracked.
	size atomic.Int64
}

type recipientRoute struct {
	dirty    bool     // stored since the last drain request
	storing  int      // stored here, commit not seen yet
	node     string   // node of the envelopes in flight (the one that stores)
	nodes    []string // every node they went to (the account's other connections)
	inflight int
	sentAt   []time.Time // when each of the envelopes in flight was decided
	// missed: nodes where a copy without the duty, of a message in flight,
	// found no live connection (dropped there). Until nothing is in flight,
	// later messages are not sent to them.
	missed  []string
	nudging bool // a drain request is being sent
	tries   int  // drain requests not answered in a row
	// nowhereAt: when a drain request found the account connected nowhere
	// (the entry lingers, see nowhereLinger).
	nowhereAt time.Time
	// queue: messages to store here once the envelopes in flight are
	// answered (those may be stored too, and must come first).
	queue    []queuedStore
	flushing bool
	// acks of messages stored here, sent once a drain request covers them:
	// a message sent after such an ack then comes after the stored one.
	acks []func()
}

type queuedStore struct {
	it    *message
	frame []byte
}

func (o *crossOrder) init(h *Handler) {
	o.h = h
	o.m = map[string]*recipientRoute{}
}

// decide says whether a message to account may go to nodes now (the first
// stores it if its connection is gone; and whether it must ask for a drain
// first), or must be stored here. A node the envelopes in flight did not go
// to is a connection of the account that came meanwhile: it would get this
// message before those, which may yet be stored, so this one is stored too.
// With drain, acks are those of stored messages the request covers: call
// them once the envelope is sent.
// With send, at is the envelope's mark for answered.
func (o *crossOrder) decide(account string, nodes []string) (send, drain bool, acks []func(), at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	node := nodes[0]
	now := time.Now()
	r := o.m[account]
	if r == nil {
		o.m[account] = &recipientRoute{node: node, nodes: nodes, inflight: 1, sentAt: []time.Time{now}}
		o.size.Add(1)
		return true, false, nil, now
	}
	if r.storing > 0 || len(r.queue) > 0 || r.flushing ||
		(r.inflight > 0 && (r.node != node || !subset(nodes, r.nodes) || overlaps(nodes, r.missed) || o.overdueLocked(r, now))) {
		return false, false, nil, time.Time{}
	}
	// A drain request in flight may be for another node (or fail): this
	// message carries its own.
	drain, r.dirty = r.dirty || r.nudging, false
	if drain {
		acks, r.acks = r.acks, nil
	}
	r.node, r.nodes = node, nodes
	r.inflight++
	r.sentAt = append(r.sentAt, now)
	return true, drain, acks, now
}

// overdueLocked: an envelope in flight for r was sent long enough ago that
// its receiver may have left it to us (see crossOrder).
func (o *crossOrder) overdueLocked(r *recipientRoute, now time.Time) bool {
	for _, t := range r.sentAt {
		if now.Sub(t) >= o.h.cfg.ConfirmTimeout/2 {
			return true
		}
	}
	return false
}

// subset: every node of a is in b.
func subset(a, b []string) bool {
	for _, n := range a {
		if !slices.Contains(b, n) {
			return false
		}
	}
	return true
}

// overlaps: some node of a is in b.
func overlaps(a, b []string) bool {
	for _, n := range a {
		if slices.Contains(b, n) {
			return true
		}
	}
	return false
}

// missedThere: node answered that a copy without the storing duty (another
// connection of account there) was not written to a live connection: the
// account's init there is reading its backlog, or it left. Were the copy with
// the duty then stored, that connection would get the next message live
// before it; so while that one is in flight, the next ones are stored (and a
// drain request follows, see afterLocked).
func (o *crossOrder) missedThere(account, node string) {
	if o.size.Load() == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.m[account]
	if r == nil || r.inflight == 0 || slices.Contains(r.missed, node) {
		return
	}
	r.missed = append(r.missed, node)
}

func release(acks []func()) {
	for _, a := range acks {
		a()
	}
}

// answered: node said what became of a copy sent to account.
//
// A copy stored there while the account connected here meanwhile (its init
// read the backlog before the row was committed) is read again here now,
// before a later message reaches the connection live.
func (o *crossOrder) answered(account string, stored bool, at time.Time) {
	if stored && o.h.table.Online(account) {
		o.h.redrain(account)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.m[account]
	if r == nil {
		return
	}
	r.inflight--
	if i := slices.IndexFunc(r.sentAt, at.Equal); i >= 0 {
		r.sentAt = slices.Delete(r.sentAt, i, i+1)
	}
	if stored {
		r.dirty = true // committed there: ready for a drain request
	}
	if r.inflight == 0 {
		r.missed, r.sentAt = nil, nil
	}
	if r.inflight == 0 && len(r.queue) > 0 && !r.flushing {
		r.flushing = true
		go o.flush(account)
		return
	}
	o.afterLocked(account, r)
}

// queueStore keeps a message for account (to store here, or to push to its
// connection here) behind the envelopes in flight to account: those may be
// stored, or pushed here, and must come first. false when there are none
// (deliver it now).
func (o *crossOrder) queueStore(account string, it *message, frame []byte) bool {
	if o.size.Load() == 0 {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.m[account]
	if r == nil || (r.inflight == 0 && len(r.queue) == 0 && !r.flushing) {
		return false
	}
	r.queue = append(r.queue, queuedStore{it: it, frame: frame})
	return true
}

// flush delivers (stores, as a rule) the queued messages in order.
func (o *crossOrder) flush(account string) {
	for {
		o.mu.Lock()
		r := o.m[account]
		if r == nil {
			o.mu.Unlock()
			return
		}
		q := r.queue
		r.queue = nil
		if len(q) == 0 {
			r.flushing = false
			o.afterLocked(account, r)
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		for _, e := range q {
			o.h.deliverHere(e.it, e.frame)
		}
	}
}

// storedHere: a message for account (not connected here) went to this node's
// offline queue with ticket; later ones wait behind it until it is committed.
func (o *crossOrder) storedHere(account string, ticket uint64, ack func()) {
	o.mu.Lock()
	r := o.m[account]
	if r == nil {
		r = &recipientRoute{}
		o.m[account] = r
		o.size.Add(1)
	}
	r.storing++
	r.dirty = true
	r.acks = append(r.acks, ack)
	o.mu.Unlock()
	o.waitCommit(account, ticket)
}

func (o *crossOrder) waitCommit(account string, ticket uint64) {
	o.h.queue.NotifyWritten(ticket, o.h.cfg.DrainTimeout, func(written bool) {
		if !written { // the database is slow or down: keep waiting, keep storing
			o.waitCommit(account, ticket)
			return
		}
		o.waitUnspooled(account)
	})
}

// waitUnspooled waits until none of account's rows is in this node's spool
// (MySQL was down: the row is on this node's disk, where another node's drain
// cannot read it), then counts the row as readable by every node.
func (o *crossOrder) waitUnspooled(account string) {
	if o.h.spooledHere(account) {
		o.releaseAcks(account) // durable: the sender may hear "stored"
		time.AfterFunc(spoolRecheck, func() { o.waitUnspooled(account) })
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if r := o.m[account]; r != nil {
		r.storing--
		o.afterLocked(account, r)
	}
}

// spoolRecheck is how often a row waiting in the spool is looked for again.
const spoolRecheck = time.Second

func (o *crossOrder) releaseAcks(account string) {
	o.mu.Lock()
	var acks []func()
	if r := o.m[account]; r != nil {
		acks, r.acks = r.acks, nil
	}
	o.mu.Unlock()
	release(acks)
}

// afterLocked sends a drain request once everything stored is committed and
// nothing is in flight, and forgets a recipient with nothing pending.
func (o *crossOrder) afterLocked(account string, r *recipientRoute) {
	if r.storing > 0 || r.inflight > 0 || r.nudging || r.flushing || len(r.queue) > 0 {
		return
	}
	if !r.dirty {
		delete(o.m, account)
		o.size.Add(-1)
		go release(r.acks)
		return
	}
	r.nudging = true
	go o.nudge(account)
}

// nudge asks the nodes account is connected on to drain it, and drains its
// connections here if it has come here meanwhile (its init may have read the
// backlog before the row was committed).
func (o *crossOrder) nudge(account string) {
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	if o.h.table.Online(account) {
		o.h.redrain(account)
	}
	var nodes []string
	var err error
	remote := o.h.remoteNow()
	if remote != nil { // nil: a handover's route to the other process is gone
		nodes, err = remote.Where(ctx, account)
	}
	o.mu.Lock()
	r := o.m[account]
	if r == nil {
		o.mu.Unlock()
		return
	}
	if err == nil && len(nodes) == 0 {
		// Connected nowhere: its next init reads the committed rows. But a
		// node back from a Redis outage may have it connected without its
		// entries written yet (its re-read of what was stored meanwhile can
		// miss this row): for a while, the next message to it found
		// somewhere carries a drain request.
		r.nudging = false
		acks := r.acks
		r.acks = nil
		r.nowhereAt = time.Now()
		at := r.nowhereAt
		time.AfterFunc(nowhereLinger, func() { o.forget(account, at) })
		o.mu.Unlock()
		release(acks)
		return
	}
	if err != nil {
		o.retryLocked(account, r)
		o.mu.Unlock()
		return
	}
	r.dirty = false
	acks := r.acks
	r.acks = nil
	o.mu.Unlock()

	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := false
	for _, n := range nodes {
		wg.Add(1)
		env := cluster.Envelope{Kind: cluster.KindDrain, To: []string{account}}
		err := remote.Send(ctx, n, env, func(out []cluster.Outcome) {
			defer wg.Done()
			if len(out) == 0 || out[0] == cluster.NotTaken {
				mu.Lock()
				failed = true
				mu.Unlock()
			}
		})
		if err != nil {
			wg.Done()
			failed = true
		}
	}
	release(acks) // the requests are in the streams: what is sent next comes after
	wg.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	if r = o.m[account]; r == nil {
		return
	}
	if failed {
		r.dirty = true
		o.retryLocked(account, r)
		return
	}
	r.nudging, r.tries = false, 0
	o.afterLocked(account, r)
}

// retryLocked tries the drain request again later (a frozen node may come
// back; a dead one's clients init elsewhere, which reads the rows anyway),
// less and less often while it fails, for as long as the rows may be unread
// (a node cut off from Redis asks once Redis is back, see resume).
// Meanwhile the next message carries the request itself.
//
// The acks waiting for the request go now: the rows are committed, and the
// sender does not wait through an outage (what it sends next is still kept
// behind them on this node; only a message sent through another node could
// overtake them).
func (o *crossOrder) retryLocked(account string, r *recipientRoute) {
	r.nudging, r.dirty = false, true
	acks := r.acks
	r.acks = nil
	go release(acks)
	r.tries++
	time.AfterFunc(cluster.SuspectFor*time.Duration(min(r.tries, 10)), func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if r := o.m[account]; r != nil {
			o.nudgeLocked(account, r)
		}
	})
}

// nudgeLocked sends the drain request for r now if it is due and nothing
// holds it back.
func (o *crossOrder) nudgeLocked(account string, r *recipientRoute) {
	if r.dirty && !r.nudging && r.storing == 0 && r.inflight == 0 && !r.flushing && len(r.queue) == 0 {
		r.nudging = true
		go o.nudge(account)
	}
}

// nowhereLinger is how long a recipient found nowhere after a message was
// stored for it keeps its drain request for the next message found
// somewhere: the time a node back from a Redis outage takes to write its
// account map entries again.
const nowhereLinger = 10 * time.Second

// forget drops account's entry if nothing happened to it since it was found
// nowhere at at.
func (o *crossOrder) forget(account string, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.m[account]
	if r == nil || !r.nowhereAt.Equal(at) || r.nudging || r.storing > 0 || r.inflight > 0 || r.flushing || len(r.queue) > 0 {
		return
	}
	delete(o.m, account)
	o.size.Add(-1)
	go release(r.acks)
}

// resume asks again, now, for every drain request still due: this node is
// back in touch with the others after an outage.
func (o *crossOrder) resume() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for a, r := range o.m {
		o.nudgeLocked(a, r)
	}
}
