package history

import (
	"context"
	"database/sql"
	"fmt"
)

// After returns up to limit messages of conversation conv with a seq above
// after, oldest first, their changes applied, and whether more follow: what a
// client that saw up to after missed. One range of idx_conv_id.
func (s *Store) After(ctx context.Context, conv string, after int64, limit int) (entries []Entry, more bool, err error) {
	q := "SELECT `id`, `msg_id`, `from`, `to`, `group`, `content`, `addtime` FROM `" + s.table +
		"` WHERE `conv` = ? AND `id` > ? ORDER BY `id` LIMIT ?"
	rows, err := s.db.QueryContext(ctx, q, conv, after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("history: %q after %d: %w", conv, after, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e       Entry
			content sql.NullString
		)
		if err := rows.Scan(&e.Seq, &e.ID, &e.From, &e.To, &e.Group, &content, &e.Time); err != nil {
			return nil, false, fmt.Errorf("history: %q after %d: %w", conv, after, err)
		}
		e.Content = content.String
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("history: %q after %d: %w", conv, after, err)
	}
	rows.Close()
	if len(entries) > limit {
		entries, more = entries[:limit], true
	}
	if err := s.applyChanges(ctx, conv, entries); err != nil {
		return nil, false, err
	}
	return entries, more, nil
}
