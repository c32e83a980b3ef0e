// Package groups holds group membership: a SQL table (in the offline pool's
// database) and a cache in front of it, so that a message to a group of
// thousands costs one lookup, not one query per member.
package groups

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"chatserver/internal/sqlin"
)

// Store runs the membership SQL. All statements are parameterized; the table
// name is checked by the caller's migration (letters, digits, _).
type Store struct {
	db     *sql.DB
	table  string
	insert string // INSERT IGNORE (MySQL) or INSERT OR IGNORE (SQLite)
	now    func() time.Time
}

// NewStore uses db (already migrated) and table. sqlite selects the dialect.
func NewStore(db *sql.DB, table string, sqlite bool) *Store {
	ins := "INSERT IGNORE INTO"
	if sqlite {
		ins = "INSERT OR IGNORE INTO"
	}
	return &Store{db: db, table: "`" + table + "`", insert: ins, now: time.Now}
}

// Members lists a group's accounts in name order.
func (s *Store) Members(ctx context.Context, group string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT `account` FROM "+s.table+" WHERE `group_id` = ? ORDER BY `account`", group)
	if err != nil {
		return nil, fmt.Errorf("groups: members of %q: %w", group, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("groups: members of %q: %w", group, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("groups: members of %q: %w", group, err)
	}
	return out, nil
}

// Add puts accounts in group (present ones are left as they are), in one
// transaction, refusing to grow the group past max members.
func (s *Store) Add(ctx context.Context, group string, accounts []string, max int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("groups: add to %q: %w", group, err)
	}
	defer func() { _ = tx.Rollback() }()
	now := s.now().Unix()
	for len(accounts) > 0 {
		chunk := accounts[:min(len(accounts), 1000)]
		accounts = accounts[len(chunk):]
		var b strings.Builder
		b.WriteString(s.insert + " " + s.table + " (`group_id`, `account`, `addtime`) VALUES ")
		args := make([]any, 0, 3*len(chunk))
		for i, a := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?)")
			args = append(args, group, a, now)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("groups: add to %q: %w", group, err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+s.table+" WHERE `group_id` = ?", group).Scan(&n); err != nil {
		return fmt.Errorf("groups: count %q: %w", group, err)
	}
	if n > max {
		return &TooLargeError{Group: group, Size: n, Max: max}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("groups: add to %q: %w", group, err)
	}
	return nil
}

// Remove takes accounts out of group.
func (s *Store) Remove(ctx context.Context, group string, accounts []string) error {
	for len(accounts) > 0 {
		chunk := accounts[:min(len(accounts), 1000)]
		accounts = accounts[len(chunk):]
		q, in := sqlin.List("DELETE FROM "+s.table+" WHERE `group_id` = ? AND `account` IN (", chunk)
		if _, err := s.db.ExecContext(ctx, q, append([]any{group}, in...)...); err != nil {
			return fmt.Errorf("groups: remove from %q: %w", group, err)
		}
	}
	return nil
}

// TooLargeError says a change would make a group larger than allowed; nothing
// was changed.
type TooLargeError struct {
	Group     string
	Size, Max int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("groups: %q would have %d members; the limit is %d", e.Group, e.Size, e.Max)
}
