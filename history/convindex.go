package history

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// ConvIndex writes the one-to-one conversations of each account
// (<history table>_conv) for the conversation list. A conversation is written
// the first time this process sees it, by a Writer of its own (batched, off the
// message path); after that its messages cost a map lookup. A group message
// writes nothing: the group's members are its conversation's parties.
type ConvIndex struct {
	w   *Writer
	max int
	// seen: the conversations (the two accounts, sorted) written or queued.
	// A message of a known one takes the read lock only and allocates nothing.
	mu   sync.RWMutex
	seen map[[2]string]struct{}
}

// convRows is ConvIndex's inserter: two rows for each entry's conversation.
type convRows struct {
	db                  *sql.DB
	prefix, row, suffix string
}

// NewConvIndex starts the index's writer on db beside the history table
// (checked by NewReads); remember bounds the conversations kept in memory
// (past it the set starts again: a conversation is at worst written twice,
// which the primary key absorbs). Stop it with Close.
func NewConvIndex(db *sql.DB, dialect Dialect, table string, cfg WriterConfig, remember int, log zerolog.Logger) *ConvIndex {
	ins, suffix := "INSERT IGNORE INTO ", ""
	if dialect == SQLite {
		ins, suffix = "INSERT INTO ", " ON CONFLICT (`account`, `conv`) DO NOTHING"
	}
	rows := &convRows{db: db, prefix: ins + "`" + table + "_conv` (`account`, `conv`, `peer`) VALUES ", row: "(?, ?, ?)", suffix: suffix}
	cfg.TrackConversations = 0
	return &ConvIndex{w: NewWriter(rows, cfg, log), max: remember, seen: make(map[[2]string]struct{})}
}

// Record notes e's conversation if it is a one-to-one one not seen yet. It
// never blocks.
func (x *ConvIndex) Record(e Entry) {
	if e.Group != "" {
		return
	}
	key := [2]string{e.From, e.To}
	if key[1] < key[0] {
		key[0], key[1] = key[1], key[0]
	}
	x.mu.RLock()
	_, known := x.seen[key]
	x.mu.RUnlock()
	if known {
		return
	}
	x.mu.Lock()
	_, known = x.seen[key]
	if !known {
		if len(x.seen) >= x.max {
			x.seen = make(map[[2]string]struct{})
		}
		x.seen[key] = struct{}{}
	}
	x.mu.Unlock()
	if !known {
		x.w.Record(e)
	}
}

// Flush waits until every conversation noted before the call is written.
func (x *ConvIndex) Flush(ctx context.Context) error { return x.w.Flush(ctx) }

// Close writes what is queued, until ctx ends.
func (x *ConvIndex) Close(ctx context.Context) error { return x.w.Close(ctx) }

// Insert writes both parties' rows of each entry's conversation; rows already
// there are left as they are.
func (c *convRows) Insert(ctx context.Context, entries []Entry) error {
	var b strings.Builder
	b.WriteString(c.prefix)
	args := make([]any, 0, len(entries)*6)
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c.row)
		b.WriteByte(',')
		b.WriteString(c.row)
		conv := e.Conv()
		args = append(args, e.From, conv, e.To, e.To, conv, e.From)
	}
	b.WriteString(c.suffix)
	if _, err := c.db.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("history: note %d conversations: %w", len(entries), err)
	}
	return nil
}

// Recorders records each entry with every one of them (the history writer
// and the conversation index).
type Recorders []interface{ Record(Entry) }

// Record hands e to each.
func (rs Recorders) Record(e Entry) {
	for _, r := range rs {
		r.Record(e)
	}
}
