package offline

import (
	"context"
	"fmt"
)

// Unread counts account's unsent rows per sender (group messages count under
// their sender too).
func (s *Store) Unread(ctx context.Context, account string) (map[string]int, error) {
	cast := "CAST(%s AS BINARY)"
	if s.dialect == SQLite {
		cast = "CAST(%s AS BLOB)"
	}
	to, from := fmt.Sprintf(cast, "`to`"), fmt.Sprintf(cast, "`from`")
	q := "SELECT " + to + ", " + from + ", COUNT(*) FROM `" + s.table + "` WHERE `to` = ? AND `status` = 0 GROUP BY " + to + ", " + from
	rows, err := s.db.QueryContext(ctx, q, account)
	if err != nil {
		return nil, fmt.Errorf("offline: unread for %q: %w", account, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			t, f []byte
			n    int
		)
		if err := rows.Scan(&t, &f, &n); err != nil {
			return nil, fmt.Errorf("offline: unread for %q: %w", account, err)
		}
		if string(t) == account {
			out[string(f)] += n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("offline: unread for %q: %w", account, err)
	}
	return out, nil
}
