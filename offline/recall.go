package offline

import (
	"context"
	"fmt"
	"strings"
)

// Recall and edit of a message still waiting in the pool: a recalled message
// that no recipient was pushed yet is deleted, so that no client, legacy or
// PHP-side, ever gets it; an edited one gets its new content, which the next
// init pushes as any other row.

// WithdrawUnsent deletes the unsent rows of message id for the accounts in
// to, and returns the accounts whose row it deleted.
func (s *Store) WithdrawUnsent(ctx context.Context, id string, to []string) ([]string, error) {
	return s.changeUnsent(ctx, "withdraw", id, to, "DELETE FROM `"+s.table+"` WHERE `id` IN (")
}

// EditUnsent replaces the content of the unsent rows of message id for the
// accounts in to, and returns the accounts whose row it changed.
func (s *Store) EditUnsent(ctx context.Context, id string, to []string, content string) ([]string, error) {
	return s.changeUnsent(ctx, "edit", id, to, "UPDATE `"+s.table+"` SET `content` = ? WHERE `id` IN (", content)
}

// changeUnsent finds the unsent rows of message id for to (the key (to,
// msg_id) finds each) and runs change on them, in one transaction; with MySQL
// the rows are locked from the read on, so that a drain marking them sent
// meanwhile waits and then marks nothing.
func (s *Store) changeUnsent(ctx context.Context, what, id string, to []string, change string, args ...any) ([]string, error) {
	if len(to) == 0 {
		return nil, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("offline: %s unsent %q: %w", what, id, err)
	}
	defer func() { _ = tx.Rollback() }()
	asked := make(map[string]bool, len(to))
	qargs := make([]any, 0, len(to)+1)
	for _, a := range to {
		asked[a] = true
		qargs = append(qargs, a)
	}
	qargs = append(qargs, id)
	q := "SELECT `id`, `to` FROM `" + s.table + "` WHERE `to` IN (?" + strings.Repeat(",?", len(to)-1) +
		") AND `msg_id` = ? AND `status` = 0"
	if s.dialect == MySQL {
		q += " FOR UPDATE"
	}
	rows, err := tx.QueryContext(ctx, q, qargs...)
	if err != nil {
		return nil, fmt.Errorf("offline: %s unsent %q: %w", what, id, err)
	}
	var (
		ids  []any
		done []string
	)
	for rows.Next() {
		var (
			row     int64
			account string
		)
		if err := rows.Scan(&row, &account); err != nil {
			rows.Close()
			return nil, fmt.Errorf("offline: %s unsent %q: %w", what, id, err)
		}
		if !asked[account] { // a case-insensitive legacy table: another account's row
			continue
		}
		ids = append(ids, row)
		done = append(done, account)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("offline: %s unsent %q: %w", what, id, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	stmt := change + "?" + strings.Repeat(",?", len(ids)-1) + ")"
	if _, err := tx.ExecContext(ctx, stmt, append(args, ids...)...); err != nil {
		return nil, fmt.Errorf("offline: %s unsent %q: %w", what, id, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("offline: %s unsent %q: %w", what, id, err)
	}
	return done, nil
}
