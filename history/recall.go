package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Recall and edit. A sender may take back (recall) or replace (edit) a message
// of its own: the history row's content is cleared or replaced, and the
// change table (<table>_change) flags the message, so that pages show it
// recalled or edited. Frames owed to recipients that had no connection taking
// them wait in <table>_pending until their next init.

// The kinds of a pending event.
const (
	KindRecall = "recall"
	KindEdit   = "edit"
)

// Event is a recall or an edit owed to one account.
type Event struct {
	Seq     int64  // the row id, in the order stored
	To      string // the account it is owed to
	Kind    string // KindRecall or KindEdit
	ID      string // the message recalled or edited
	From    string // its sender
	Group   string // its group, "" for one-to-one
	Content string // the new content of an edit
	Time    int64  // when the recall or edit was made (unix seconds)
}

func (s *Store) changeTable() string  { return "`" + s.table + "_change`" }
func (s *Store) pendingTable() string { return "`" + s.table + "_pending`" }

// Find returns the message id of conversation conv, its changes applied.
func (s *Store) Find(ctx context.Context, conv, id string) (Entry, error) {
	var (
		e       Entry
		content sql.NullString
	)
	q := "SELECT `id`, `msg_id`, `from`, `to`, `group`, `content`, `addtime` FROM `" + s.table + "` WHERE `conv` = ? AND `msg_id` = ?"
	switch err := s.db.QueryRowContext(ctx, q, conv, id).Scan(&e.Seq, &e.ID, &e.From, &e.To, &e.Group, &content, &e.Time); {
	case errors.Is(err, sql.ErrNoRows):
		return e, ErrUnknownMessage
	case err != nil:
		return e, fmt.Errorf("history: find %q in %q: %w", id, conv, err)
	}
	e.Content = content.String
	one := []Entry{e}
	if err := s.applyChanges(ctx, conv, one); err != nil {
		return e, err
	}
	return one[0], nil
}

// Recall clears the content of message id of conv and flags it recalled.
func (s *Store) Recall(ctx context.Context, conv, id string) error {
	upsert := "INSERT INTO " + s.changeTable() + " (`conv`, `msg_id`, `recalled`, `edited`) VALUES (?, ?, 1, 0)"
	if s.dialect == SQLite {
		upsert += " ON CONFLICT (`conv`, `msg_id`) DO UPDATE SET `recalled` = 1"
	} else {
		upsert += " ON DUPLICATE KEY UPDATE `recalled` = 1"
	}
	return s.change(ctx, "recall", conv, id, "", upsert, conv, id)
}

// Edit replaces the content of message id of conv and flags it edited at
// time at (unix seconds).
func (s *Store) Edit(ctx context.Context, conv, id, content string, at int64) error {
	upsert := "INSERT INTO " + s.changeTable() + " (`conv`, `msg_id`, `recalled`, `edited`) VALUES (?, ?, 0, ?)"
	if s.dialect == SQLite {
		upsert += " ON CONFLICT (`conv`, `msg_id`) DO UPDATE SET `edited` = excluded.`edited`"
	} else {
		upsert += " ON DUPLICATE KEY UPDATE `edited` = VALUES(`edited`)"
	}
	return s.change(ctx, "edit", conv, id, content, upsert, conv, id, at)
}

// change sets the content of the message and runs upsert on the change
// table, in one transaction.
func (s *Store) change(ctx context.Context, what, conv, id, content, upsert string, args ...any) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("history: %s %q: %w", what, id, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, "UPDATE `"+s.table+"` SET `content` = ? WHERE `conv` = ? AND `msg_id` = ?", content, conv, id)
	if err != nil {
		return fmt.Errorf("history: %s %q: %w", what, id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		// MySQL counts changed rows: the same content again is no change,
		// but the row must still be there.
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM `"+s.table+"` WHERE `conv` = ? AND `msg_id` = ?", conv, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrUnknownMessage
		}
		if err != nil {
			return fmt.Errorf("history: %s %q: %w", what, id, err)
		}
	}
	if _, err := tx.ExecContext(ctx, upsert, args...); err != nil {
		return fmt.Errorf("history: %s %q: %w", what, id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("history: %s %q: %w", what, id, err)
	}
	return nil
}

// ApplyChanges sets Recalled and Edited on entries of conv (read elsewhere,
// e.g. the newest message of a conversation list) from the change table.
func (s *Store) ApplyChanges(ctx context.Context, conv string, entries []Entry) error {
	return s.applyChanges(ctx, conv, entries)
}

// applyChanges sets Recalled and Edited on the entries of conv that have a
// row in the change table: one lookup by primary key for the page's ids.
func (s *Store) applyChanges(ctx context.Context, conv string, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	args := make([]any, 0, len(entries)+1)
	args = append(args, conv)
	at := make(map[string]int, len(entries))
	for i, e := range entries {
		args = append(args, e.ID)
		at[e.ID] = i
	}
	q := "SELECT `msg_id`, `recalled`, `edited` FROM " + s.changeTable() + " WHERE `conv` = ? AND `msg_id` IN (?" +
		strings.Repeat(",?", len(entries)-1) + ")"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("history: changes of %q: %w", conv, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id       string
			recalled int
			edited   int64
		)
		if err := rows.Scan(&id, &recalled, &edited); err != nil {
			return fmt.Errorf("history: changes of %q: %w", conv, err)
		}
		if i, ok := at[id]; ok {
			entries[i].Recalled, entries[i].Edited = recalled != 0, edited
			if entries[i].Recalled {
				entries[i].Content = ""
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("history: changes of %q: %w", conv, err)
	}
	return nil
}

// SavePending stores events owed to accounts, in one INSERT.
func (s *Store) SavePending(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + s.pendingTable() + " (`to`, `kind`, `msg_id`, `from`, `group`, `content`, `addtime`) VALUES ")
	args := make([]any, 0, len(events)*7)
	for i, e := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?)")
		args = append(args, e.To, e.Kind, e.ID, e.From, e.Group, e.Content, e.Time)
	}
	if _, err := s.db.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("history: store %d pending events: %w", len(events), err)
	}
	return nil
}

// Pending returns up to limit events owed to account, oldest first.
func (s *Store) Pending(ctx context.Context, account string, limit int) ([]Event, error) {
	q := "SELECT `id`, `kind`, `msg_id`, `from`, `group`, `content`, `addtime` FROM " + s.pendingTable() +
		" WHERE `to` = ? ORDER BY `id` LIMIT ?"
	rows, err := s.db.QueryContext(ctx, q, account, limit)
	if err != nil {
		return nil, fmt.Errorf("history: pending events of %q: %w", account, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e := Event{To: account}
		var content sql.NullString
		if err := rows.Scan(&e.Seq, &e.Kind, &e.ID, &e.From, &e.Group, &content, &e.Time); err != nil {
			return nil, fmt.Errorf("history: pending events of %q: %w", account, err)
		}
		e.Content = content.String
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: pending events of %q: %w", account, err)
	}
	return out, nil
}

// DeletePending deletes the events with the given Seqs (once pushed).
func (s *Store) DeletePending(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	args := make([]any, len(seqs))
	for i, v := range seqs {
		args[i] = v
	}
	q := "DELETE FROM " + s.pendingTable() + " WHERE `id` IN (?" + strings.Repeat(",?", len(seqs)-1) + ")"
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("history: delete %d pending events: %w", len(seqs), err)
	}
	return nil
}

// PruneChanges is the retention of recall and edit: it deletes the change
// rows of messages no longer in the history (deleted by retention), and with
// a non-zero cutoff the pending events stored before it, never delivered (an
// account that only uses legacy clients). Both tables hold only changed
// messages and undelivered events: small, read whole.
func (s *Store) PruneChanges(ctx context.Context, cutoff time.Time) error {
	q := "DELETE FROM " + s.changeTable() + " WHERE NOT EXISTS (SELECT 1 FROM `" + s.table + "` m" +
		" WHERE m.`conv` = " + s.changeTable() + ".`conv` AND m.`msg_id` = " + s.changeTable() + ".`msg_id`)"
	if _, err := s.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("history: prune changes of deleted messages: %w", err)
	}
	if cutoff.IsZero() {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, "DELETE FROM "+s.pendingTable()+" WHERE `addtime` < ?", cutoff.Unix()); err != nil {
		return fmt.Errorf("history: prune pending events: %w", err)
	}
	return nil
}

// pruneChanges runs PruneChanges in a retention pass (cutoff from r.MaxAge).
func (s *Store) pruneChanges(ctx context.Context, r Retention, now func() time.Time, log zerolog.Logger) {
	var cutoff time.Time
	if r.MaxAge > 0 {
		cutoff = now().Add(-r.MaxAge)
	}
	if err := s.PruneChanges(ctx, cutoff); err != nil && ctx.Err() == nil {
		log.Warn().Err(err).Msg("history retention of recalls and edits failed; trying again at the next pass")
	}
}
