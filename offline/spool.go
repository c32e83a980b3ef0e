package offline

import (
	"context"
	"fmt"
	"time"

	"chatserver/internal/sqlin"
)

// Spool methods: the embedded SQLite store doubles as an on-disk spool for
// the MySQL pool. When MySQL cannot be written, the writer commits the batch to
// the spool instead (a local file, so a crash loses nothing it acknowledged) and
// moves the spooled rows to MySQL, oldest first, once it answers again; while
// anything is spooled, new batches go behind it, so the order holds.

// Oldest returns up to limit rows of the whole table in id order (the spool's
// next rows to move).
func (s *Store) Oldest(ctx context.Context, limit int) ([]Row, error) {
	r, err := s.db.QueryContext(ctx, "SELECT `id`, `to`, `from`, `content`, `addtime`, `group`, `msg_id` FROM `"+
		s.table+"` ORDER BY `id` LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("offline: read spool: %w", err)
	}
	defer r.Close()
	var rows []Row
	for r.Next() {
		row, err := scanRow(r)
		if err != nil {
			return nil, fmt.Errorf("offline: read spool: %w", err)
		}
		rows = append(rows, row)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("offline: read spool: %w", err)
	}
	return rows, nil
}

// Delete removes rows by id (rows moved out of the spool).
func (s *Store) Delete(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	q, args := sqlin.List("DELETE FROM `"+s.table+"` WHERE `id` IN (", ids)
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("offline: delete %d spooled rows: %w", len(ids), err)
	}
	return nil
}

// Count returns the number of rows in the table.
func (s *Store) Count(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+s.table+"`").Scan(&n); err != nil {
		return 0, fmt.Errorf("offline: count: %w", err)
	}
	return n, nil
}

// spooler is what the writer needs of the spool.
type spooler interface {
	Insert(ctx context.Context, msgs []Message) error
	HasPending(ctx context.Context, account string) (bool, error)
	Oldest(ctx context.Context, limit int) ([]Row, error)
	Delete(ctx context.Context, ids []int64) error
}

func rowsToMessages(rows []Row) []Message {
	msgs := make([]Message, len(rows))
	for i, r := range rows {
		msgs[i] = Message{To: r.To, From: r.From, Content: r.Content, Group: r.Group, ID: r.MsgID, AddTime: r.AddTime}
	}
	return msgs
}

// directTimeout bounds one INSERT into MySQL before the batch goes to the spool.
const directTimeout = 3 * time.Second

// SpoolHolds reports whether rows for account wait in the spool for MySQL. They
// are newer than any of the account's rows in MySQL, and a drain cannot read
// them there yet: it must not go live past them.
func (w *Writer) SpoolHolds(ctx context.Context, account string) (bool, error) {
	w.mu.Lock()
	spool, spooled := w.spool, w.spooled
	w.mu.Unlock()
	if spool == nil || spooled == 0 {
		return false, nil
	}
	has, err := spool.HasPending(ctx, account)
	if err != nil {
		return false, fmt.Errorf("offline: spool: %w", err)
	}
	return has, nil
}
