package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Reads keeps what each account has read: one cursor per account and
// conversation (table <history table>_read), moved only forward, and counts
// the unread from it at query time, by the history table's row ids (seq), so
// nothing is written per message. It also lists an account's conversations:
// its one-to-one ones from <history table>_conv (written by ConvIndex), its
// groups from groupsOf.
type Reads struct {
	db       *sql.DB
	groupsOf func(ctx context.Context, account string) ([]string, error)
	q        readQueries
}

type readQueries struct {
	find, move, cursor, unread, last, convs, readers string
}

// MaxUnread is where an unread count stops: a conversation with more unread
// messages than this counts this many, so a count reads at most this many
// index entries.
const MaxUnread = 1000

// ErrUnknownMessage is Find's answer when the id is no message of the conversation.
var ErrUnknownMessage = errors.New("history: not a message of this conversation")

// NewReads runs on db (owned by the caller) beside the history table named
// table (already checked by NewStore); groupsOf lists the groups an account
// is a member of.
func NewReads(db *sql.DB, dialect Dialect, table string, groupsOf func(ctx context.Context, account string) ([]string, error)) (*Reads, error) {
	if !tableName.MatchString(table) || len(table) > 64-len("_read") {
		return nil, fmt.Errorf("history: table name %q: want letters, digits and _, at most 59", table)
	}
	t, r, c := "`"+table+"`", "`"+table+"_read`", "`"+table+"_conv`"
	// Forward only: the row changes only for a higher seq, and the affected
	// row count says whether it moved (MySQL counts an unchanged row as 0;
	// the driver does not ask for found rows).
	move := "INSERT INTO " + r + " (`account`, `conv`, `seq`, `msg_id`, `updated`) VALUES (?, ?, ?, ?, ?)" +
		" ON DUPLICATE KEY UPDATE `msg_id` = IF(VALUES(`seq`) > `seq`, VALUES(`msg_id`), `msg_id`)," +
		" `updated` = IF(VALUES(`seq`) > `seq`, VALUES(`updated`), `updated`), `seq` = GREATEST(`seq`, VALUES(`seq`))"
	if dialect == SQLite {
		move = "INSERT INTO " + r + " (`account`, `conv`, `seq`, `msg_id`, `updated`) VALUES (?, ?, ?, ?, ?)" +
			" ON CONFLICT (`account`, `conv`) DO UPDATE SET `seq` = excluded.`seq`, `msg_id` = excluded.`msg_id`," +
			" `updated` = excluded.`updated` WHERE excluded.`seq` > " + r + ".`seq`"
	}
	return &Reads{db: db, groupsOf: groupsOf, q: readQueries{
		find:   "SELECT `id`, `from` FROM " + t + " WHERE `conv` = ? AND `msg_id` = ?",
		move:   move,
		cursor: "SELECT `seq`, `msg_id` FROM " + r + " WHERE `account` = ? AND `conv` = ?",
		// One range of idx_conv_id past the cursor, stopped at MaxUnread rows;
		// the account's own messages are not unread.
		unread:  "SELECT COUNT(*) FROM (SELECT 1 FROM " + t + " WHERE `conv` = ? AND `id` > ? AND `from` <> ? LIMIT " + fmt.Sprint(MaxUnread) + ") u",
		last:    "SELECT `id`, `msg_id`, `from`, `to`, `group`, `content`, `addtime` FROM " + t + " WHERE `conv` = ? ORDER BY `id` DESC LIMIT 1",
		convs:   "SELECT `conv`, `peer` FROM " + c + " WHERE `account` = ?",
		readers: "SELECT COUNT(*) FROM " + r + " WHERE `conv` = ? AND `seq` >= ? AND `account` <> ?",
	}}, nil
}

// Find returns the seq and the sender of message id in conv, or ErrUnknownMessage.
func (r *Reads) Find(ctx context.Context, conv, id string) (seq int64, from string, err error) {
	switch err := r.db.QueryRowContext(ctx, r.q.find, conv, id).Scan(&seq, &from); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, "", ErrUnknownMessage
	case err != nil:
		return 0, "", fmt.Errorf("history: find %q in %q: %w", id, conv, err)
	}
	return seq, from, nil
}

// Cursor is how far an account has read a conversation: the seq and id of
// the newest message read; zero values: nothing read.
type Cursor struct {
	Seq int64
	ID  string
}

// Move moves account's cursor in conv to the message (seq, id) if that is
// past it, and says whether it moved; if not, cur is where the cursor is.
func (r *Reads) Move(ctx context.Context, account, conv string, seq int64, id string, now int64) (moved bool, cur Cursor, err error) {
	res, err := r.db.ExecContext(ctx, r.q.move, account, conv, seq, id, now)
	if err != nil {
		return false, cur, fmt.Errorf("history: move the cursor of %q in %q: %w", account, conv, err)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return true, Cursor{Seq: seq, ID: id}, nil
	}
	cur, err = r.Cursor(ctx, account, conv)
	return false, cur, err
}

// Cursor returns account's cursor in conv.
func (r *Reads) Cursor(ctx context.Context, account, conv string) (Cursor, error) {
	var c Cursor
	switch err := r.db.QueryRowContext(ctx, r.q.cursor, account, conv).Scan(&c.Seq, &c.ID); {
	case errors.Is(err, sql.ErrNoRows):
		return Cursor{}, nil
	case err != nil:
		return c, fmt.Errorf("history: cursor of %q in %q: %w", account, conv, err)
	}
	return c, nil
}

// Unread counts the messages of conv past account's cursor that others sent,
// up to MaxUnread.
func (r *Reads) Unread(ctx context.Context, account, conv string) (int, Cursor, error) {
	cur, err := r.Cursor(ctx, account, conv)
	if err != nil {
		return 0, cur, err
	}
	var n int
	if err := r.db.QueryRowContext(ctx, r.q.unread, conv, cur.Seq, account).Scan(&n); err != nil {
		return 0, cur, fmt.Errorf("history: unread of %q in %q: %w", account, conv, err)
	}
	return n, cur, nil
}

// Readers counts the accounts but author whose cursor in conv is at seq or
// past it: how many have read the message at seq.
func (r *Reads) Readers(ctx context.Context, conv string, seq int64, author string) (int, error) {
	var n int
	if err := r.db.QueryRowContext(ctx, r.q.readers, conv, seq, author).Scan(&n); err != nil {
		return 0, fmt.Errorf("history: readers of %d in %q: %w", seq, conv, err)
	}
	return n, nil
}

// Last returns the newest message of conv, false if it has none.
func (r *Reads) Last(ctx context.Context, conv string) (Entry, bool, error) {
	var (
		e       Entry
		content sql.NullString
	)
	switch err := r.db.QueryRowContext(ctx, r.q.last, conv).Scan(&e.Seq, &e.ID, &e.From, &e.To, &e.Group, &content, &e.Time); {
	case errors.Is(err, sql.ErrNoRows):
		return e, false, nil
	case err != nil:
		return e, false, fmt.Errorf("history: last message of %q: %w", conv, err)
	}
	e.Content = content.String
	return e, true, nil
}

// Conversation is one conversation of an account: With the other party of a
// one-to-one one, or Group.
type Conversation struct {
	Conv, With, Group string
}

// Conversations lists account's one-to-one conversations and its groups.
func (r *Reads) Conversations(ctx context.Context, account string) ([]Conversation, error) {
	rows, err := r.db.QueryContext(ctx, r.q.convs, account)
	if err != nil {
		return nil, fmt.Errorf("history: conversations of %q: %w", account, err)
	}
	var out []Conversation
	for rows.Next() {
		var c Conversation
		if err := rows.Scan(&c.Conv, &c.With); err != nil {
			rows.Close()
			return nil, fmt.Errorf("history: conversations of %q: %w", account, err)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: conversations of %q: %w", account, err)
	}
	gs, err := r.groupsOf(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("history: groups of %q: %w", account, err)
	}
	for _, g := range gs {
		out = append(out, Conversation{Conv: GroupConv(g), Group: g})
	}
	return out, nil
}
