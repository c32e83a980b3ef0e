package handlers

import (
	"context"
	"sync"
	"time"
)

// Rejoin. While a node is cut off from Redis (a network fault, Redis
// restarting or failing over), the other nodes cannot reach it: its liveness
// key expires, and what they send to its accounts is stored, although those
// accounts are still connected here. When the node is back (its account map
// entries rebuilt), its live connections must read those rows before anything
// newer reaches them, or a message sent after them arrives first. So the node
// asks the offline table which accounts have unsent rows written since shortly
// before the outage began, and redrains the ones connected here (holding live
// frames for them meanwhile, as an init does).
//
// "Since" is a row id: the node notes the table's highest id every
// rowMarkEvery, and takes the last mark noted rowMarkMargin before the last
// moment Redis was known to answer.

// RowMarks reads the offline table's row ids (offline.Store).
type RowMarks interface {
	RowMark(ctx context.Context) (int64, error)
	RecipientsAfter(ctx context.Context, afterID int64, limit int) ([]string, error)
}

const (
	rowMarkEvery  = 5 * time.Second
	rowMarkMargin = 5 * time.Second
	// rejoinAgain: a second pass, for rows whose storing was decided before
	// the node was back and committed after the first pass read the table.
	rejoinAgain = 3 * time.Second
	// maxRejoinAccounts bounds one pass; more are logged (they get their rows
	// at their next init, or with the next drain request).
	maxRejoinAccounts = 100000
)

type rowMark struct {
	at time.Time
	id int64
}

// rowMarks is the history of marks: recent ones every rowMarkEvery, older
// ones thinned out (each time the history is full, every other mark of its
// older half goes), so that an outage of any length finds a mark before it.
type rowMarks struct {
	mu sync.Mutex
	s  []rowMark
}

const maxRowMarks = 64

func (r *rowMarks) add(m rowMark) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s = append(r.s, m)
	if len(r.s) <= maxRowMarks {
		return
	}
	half := len(r.s) / 2
	kept := r.s[:0]
	for i, x := range r.s {
		if i >= half || i%2 == 0 {
			kept = append(kept, x)
		}
	}
	r.s = kept
}

// before is the newest mark noted at or before t; without one, the oldest
// (the node started after t: its connections' inits read everything older),
// or 0 when there is none at all.
func (r *rowMarks) before(t time.Time) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.s) == 0 {
		return 0
	}
	id := r.s[0].id
	for _, m := range r.s {
		if m.at.After(t) {
			break
		}
		id = m.id
	}
	return id
}

// TrackRowMarks notes the offline table's highest row id every rowMarkEvery
// until ctx ends (with several nodes; see Rejoin).
func (h *Handler) TrackRowMarks(ctx context.Context) {
	if h.rowMarks == nil {
		return
	}
	t := time.NewTicker(rowMarkEvery)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, h.cfg.QueryTimeout)
		id, err := h.rowMarks.RowMark(qctx)
		cancel()
		if err == nil {
			h.marks.add(rowMark{at: time.Now(), id: id})
		}
		select {
		case <-ctx.Done():
			h.marksStopped.Store(true) // the node is stopping: no re-read after this
			return
		case <-t.C:
		}
	}
}

// Rejoin is called when this node is back in touch with the other nodes after
// being cut off from Redis; lastOK is the last moment Redis answered it. It
// redrains the local connections of every account with rows stored since
// then: a first pass now (before the node's entries are written again, so
// that a live message routed here after them is held behind the drain), and
// a second one shortly after.
func (h *Handler) Rejoin(lastOK time.Time) {
	if h.rowMarks == nil {
		return
	}
	after := h.marks.before(lastOK.Add(-rowMarkMargin))
	h.rejoinPass(after)
	h.order.resume() // drain requests of this node's own stores that could not be sent meanwhile
	time.AfterFunc(rejoinAgain, func() { h.rejoinPass(after) })
}

func (h *Handler) rejoinPass(after int64) {
	if h.marksStopped.Load() {
		return
	}
	h.redrainAfter(after, "back in touch with the other nodes: connections here read what was stored for them meanwhile")
}

// redrainAfter redrains the connections here of every account with unsent
// rows above row id after; done is the log line when there were some.
func (h *Handler) redrainAfter(after int64, done string) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	accounts, err := h.rowMarks.RecipientsAfter(ctx, after, maxRejoinAccounts)
	if err != nil {
		h.log.Error().Err(err).Int64("after_row", after).
			Msg("the offline table cannot be read: connections here get what was stored for them meanwhile at their next init")
		return
	}
	if len(accounts) == maxRejoinAccounts {
		h.log.Warn().Int("accounts", len(accounts)).Int64("after_row", after).
			Msg("too many accounts with rows stored meanwhile; some get them at their next init")
	}
	n := 0
	for _, a := range accounts {
		if h.table.Online(a) {
			h.redrain(a)
			n++
		}
	}
	if n > 0 {
		h.log.Info().Int("accounts", n).Int64("after_row", after).Msg(done)
	}
}
