// Package history keeps conversations: every message the server accepts, one
// to one or to a group, is written once to the history table (app_message by
// default), apart from the offline pool that the PHP side reads, and read back
// a page at a time by the two parties of a conversation or a group's members.
package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"chatserver/internal/sqlin"
	"chatserver/offline"
)

// Entry is one message of a conversation.
type Entry struct {
	Seq     int64  // the row id: increasing within a conversation (not contiguous)
	ID      string // the server's message id
	From    string
	To      string // the recipient of a one-to-one message, "" for a group's
	Group   string // the group of a group message, "" for one-to-one
	Content string
	Time    int64 // unix seconds
	// Recalled: its sender took it back (Content is empty); Edited: when its
	// sender last replaced Content (unix seconds), 0 if never (recall.go).
	Recalled bool
	Edited   int64
}

// Conv is the conversation key of e: the two accounts sorted, or "g:<group>".
func (e Entry) Conv() string {
	if e.Group != "" {
		return GroupConv(e.Group)
	}
	return PairConv(e.From, e.To)
}

// PairConv is the key of the conversation between a and b, whoever asks.
func PairConv(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "|" + b
}

// GroupConv is the key of a group's conversation.
func GroupConv(group string) string { return "g:" + group }

// Dialect names the SQL engine: "mysql" or "sqlite" (offline.Dialect's values).
type Dialect string

// The engines.
const (
	MySQL  Dialect = "mysql"
	SQLite Dialect = "sqlite"
)

// ErrUnknownBefore is Page's answer when before names no message of the conversation.
var ErrUnknownBefore = errors.New("history: before is not a message of this conversation")

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Store runs the history table's SQL on the offline pool's database handle.
// Every statement is parameterized; only the checked table name is spliced in.
type Store struct {
	db      *sql.DB
	dialect Dialect
	table   string
	q       queries
}

type queries struct {
	insertPrefix, insertRow, insertSuffix string
	seqOf, page, pageBefore               string
	oldest, deletePrefix                  string
	keepFrom, beyond                      string
}

// NewStore uses db (owned by the caller) for the history table named table.
func NewStore(db *sql.DB, dialect Dialect, table string) (*Store, error) {
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("history: table name %q: want letters, digits and _", table)
	}
	if dialect != MySQL && dialect != SQLite {
		return nil, fmt.Errorf("history: unknown dialect %q", dialect)
	}
	t := "`" + table + "`"
	suffix := " ON DUPLICATE KEY UPDATE `id` = `id`"
	if dialect == SQLite {
		suffix = " ON CONFLICT (`conv`, `msg_id`) DO NOTHING"
	}
	cols := "`id`, `msg_id`, `from`, `to`, `group`, `content`, `addtime`"
	return &Store{db: db, dialect: dialect, table: table, q: queries{
		insertPrefix: "INSERT INTO " + t + " (`conv`, `msg_id`, `from`, `to`, `group`, `content`, `addtime`) VALUES ",
		insertRow:    "(?, ?, ?, ?, ?, ?, ?)",
		insertSuffix: suffix,
		seqOf:        "SELECT `id` FROM " + t + " WHERE `conv` = ? AND `msg_id` = ?",
		// Newest first through idx_conv_id, then turned around: the page is
		// the limit rows just below the cursor, read as one index range.
		page:         "SELECT " + cols + " FROM " + t + " WHERE `conv` = ? ORDER BY `id` DESC LIMIT ?",
		pageBefore:   "SELECT " + cols + " FROM " + t + " WHERE `conv` = ? AND `id` < ? ORDER BY `id` DESC LIMIT ?",
		oldest:       "SELECT `id` FROM " + t + " WHERE `addtime` < ? ORDER BY `addtime` LIMIT ?",
		deletePrefix: "DELETE FROM " + t + " WHERE `id` IN (",
		// The id of the newest row past the kept count, and the rows up to
		// it, oldest first: both ranges of idx_conv_id.
		keepFrom: "SELECT `id` FROM " + t + " WHERE `conv` = ? ORDER BY `id` DESC LIMIT 1 OFFSET ?",
		beyond:   "SELECT `id` FROM " + t + " WHERE `conv` = ? AND `id` <= ? ORDER BY `id` LIMIT ?",
	}}, nil
}

// Migrate creates the tables from <dialect>/*.sql under migrations (the
// module's sql/history), in name order, with the offline pool's migration
// runner (the same guards, and with MySQL the same named lock, so nodes
// starting at once do not run an ALTER twice); `{history_table}` stands for
// the table name. Every file is safe to run again.
func (s *Store) Migrate(ctx context.Context, migrations fs.FS) error {
	names := map[string]string{"history_table": s.table}
	if err := offline.RunMigrations(ctx, s.db, offline.Dialect(s.dialect), migrations, s.table, names); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// Insert writes entries in one multi-row INSERT, in the order given. A message
// already in its conversation (same id) is skipped, so a batch may be written
// again when the outcome of its first attempt is unknown.
func (s *Store) Insert(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(s.q.insertPrefix)
	args := make([]any, 0, len(entries)*7)
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.q.insertRow)
		to := e.To
		if e.Group != "" {
			to = ""
		}
		args = append(args, e.Conv(), e.ID, e.From, to, e.Group, e.Content, e.Time)
	}
	b.WriteString(s.q.insertSuffix)
	if _, err := s.db.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("history: insert %d rows: %w", len(entries), err)
	}
	return nil
}

// Page returns up to limit messages of conversation conv that came before
// the message with id before ("" for the newest), oldest first, and whether
// older ones remain.
func (s *Store) Page(ctx context.Context, conv, before string, limit int) (entries []Entry, more bool, err error) {
	var rows *sql.Rows
	if before == "" {
		rows, err = s.db.QueryContext(ctx, s.q.page, conv, limit+1)
	} else {
		var seq int64
		switch err := s.db.QueryRowContext(ctx, s.q.seqOf, conv, before).Scan(&seq); {
		case errors.Is(err, sql.ErrNoRows):
			return nil, false, ErrUnknownBefore
		case err != nil:
			return nil, false, fmt.Errorf("history: find %q in %q: %w", before, conv, err)
		}
		rows, err = s.db.QueryContext(ctx, s.q.pageBefore, conv, seq, limit+1)
	}
	if err != nil {
		return nil, false, fmt.Errorf("history: page of %q: %w", conv, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e       Entry
			content sql.NullString
		)
		if err := rows.Scan(&e.Seq, &e.ID, &e.From, &e.To, &e.Group, &content, &e.Time); err != nil {
			return nil, false, fmt.Errorf("history: read page of %q: %w", conv, err)
		}
		e.Content = content.String
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("history: read page of %q: %w", conv, err)
	}
	if len(entries) > limit {
		entries, more = entries[:limit], true
	}
	for i, j := 0, len(entries)-1; i < j; i, j = i+1, j-1 {
		entries[i], entries[j] = entries[j], entries[i]
	}
	if err := s.applyChanges(ctx, conv, entries); err != nil {
		return nil, false, err
	}
	return entries, more, nil
}

// DeleteOlder deletes up to batch rows written before cutoff (unix seconds),
// oldest first, and returns how many went. Small batches keep each statement's
// locks short on a busy table.
func (s *Store) DeleteOlder(ctx context.Context, cutoff int64, batch int) (int, error) {
	return s.deleteFound(ctx, "older than "+fmt.Sprint(cutoff), s.q.oldest, cutoff, batch)
}

// DeleteBeyond deletes up to batch of the oldest rows of conv past its newest
// keep, and returns how many went.
func (s *Store) DeleteBeyond(ctx context.Context, conv string, keep, batch int) (int, error) {
	var last int64
	switch err := s.db.QueryRowContext(ctx, s.q.keepFrom, conv, keep).Scan(&last); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil // keep rows or fewer
	case err != nil:
		return 0, fmt.Errorf("history: count %q: %w", conv, err)
	}
	return s.deleteFound(ctx, "of "+conv+" past "+fmt.Sprint(keep), s.q.beyond, conv, last, batch)
}

// deleteFound deletes the ids that find (a SELECT of ids, with args) returns.
func (s *Store) deleteFound(ctx context.Context, what, find string, args ...any) (int, error) {
	rows, err := s.db.QueryContext(ctx, find, args...)
	if err != nil {
		return 0, fmt.Errorf("history: find rows %s: %w", what, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("history: find rows %s: %w", what, err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("history: find rows %s: %w", what, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	q, qargs := sqlin.List(s.q.deletePrefix, ids)
	res, err := s.db.ExecContext(ctx, q, qargs...)
	if err != nil {
		return 0, fmt.Errorf("history: delete %d rows %s: %w", len(ids), what, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
