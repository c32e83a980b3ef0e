package groups

import (
	"context"
	"fmt"
)

// Of lists the groups account is a member of, in name order (through the
// table's index on account).
func (s *Store) Of(ctx context.Context, account string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT `group_id` FROM "+s.table+" WHERE `account` = ? ORDER BY `group_id`", account)
	if err != nil {
		return nil, fmt.Errorf("groups: groups of %q: %w", account, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, fmt.Errorf("groups: groups of %q: %w", account, err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("groups: groups of %q: %w", account, err)
	}
	return out, nil
}
