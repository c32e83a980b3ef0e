package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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
	find, findFor, cursor, unread, last, convs, readers string
	movePrefix, moveRow, moveSuffix                     string
}

// MaxUnread bounds an unread count: it counts others' messages among the
// newest this many past the cursor, so it reads at most this many rows.
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
	// Forward only: a row changes only for a higher seq, whatever order the
	// moves of several devices and nodes land in.
	prefix, row := "INSERT INTO "+r+" (`account`, `conv`, `seq`, `msg_id`, `updated`) VALUES ", "(?, ?, ?, ?, ?)"
	suffix := " ON DUPLICATE KEY UPDATE `msg_id` = IF(VALUES(`seq`) > `seq`, VALUES(`msg_id`), `msg_id`)," +
		" `updated` = IF(VALUES(`seq`) > `seq`, VALUES(`updated`), `updated`), `seq` = GREATEST(`seq`, VALUES(`seq`))"
	if dialect == SQLite {
		suffix = " ON CONFLICT (`account`, `conv`) DO UPDATE SET `seq` = excluded.`seq`, `msg_id` = excluded.`msg_id`," +
			" `updated` = excluded.`updated` WHERE excluded.`seq` > " + r + ".`seq`"
	}
	return &Reads{db: db, groupsOf: groupsOf, q: readQueries{
		find: "SELECT `id`, `from` FROM " + t + " WHERE `conv` = ? AND `msg_id` = ?",
		// The message by the unique key (conv, msg_id) and the reader's
		// cursor by its primary key, in one round trip.
		findFor: "SELECT m.`id`, m.`from`, COALESCE(c.`seq`, 0), COALESCE(c.`msg_id`, '') FROM " + t + " m" +
			" LEFT JOIN " + r + " c ON c.`account` = ? AND c.`conv` = m.`conv` WHERE m.`conv` = ? AND m.`msg_id` = ?",
		movePrefix: prefix, moveRow: row, moveSuffix: suffix,
		cursor: "SELECT `seq`, `msg_id` FROM " + r + " WHERE `account` = ? AND `conv` = ?",
		// The newest MaxUnread rows past the cursor, one range of idx_conv_id
		// however many the account itself wrote; its own messages are not
		// unread.
		unread:  "SELECT COUNT(*) FROM (SELECT `from` FROM " + t + " WHERE `conv` = ? AND `id` > ? ORDER BY `id` DESC LIMIT " + fmt.Sprint(MaxUnread) + ") u WHERE u.`from` <> ?",
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

// FindFor returns the seq and the sender of message id in conv and reader's
// cursor there, or ErrUnknownMessage.
func (r *Reads) FindFor(ctx context.Context, reader, conv, id string) (seq int64, from string, cur Cursor, err error) {
	switch err := r.db.QueryRowContext(ctx, r.q.findFor, reader, conv, id).Scan(&seq, &from, &cur.Seq, &cur.ID); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, "", cur, ErrUnknownMessage
	case err != nil:
		return 0, "", cur, fmt.Errorf("history: find %q in %q: %w", id, conv, err)
	}
	return seq, from, cur, nil
}

// MoveAll applies moves (one per account and conversation) in one statement;
// each cursor changes only if its move is past it.
func (r *Reads) MoveAll(ctx context.Context, moves []CursorMove) error {
	if len(moves) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.q.movePrefix)
	args := make([]any, 0, len(moves)*5)
	for i, m := range moves {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.q.moveRow)
		args = append(args, m.Account, m.Conv, m.Seq, m.ID, m.Time)
	}
	b.WriteString(r.q.moveSuffix)
	if _, err := r.db.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("history: move %d cursors: %w", len(moves), err)
	}
	return nil
}

// Cursor is how far an account has read a conversation: the seq and id of
// the newest message read; zero values: nothing read.
type Cursor struct {
	Seq int64
	ID  string
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
// among the newest MaxUnread past it.
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
