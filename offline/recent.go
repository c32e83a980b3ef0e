package offline

import (
	"context"
	"fmt"
)

// Rows stored while a node was cut off from the others. A node that lost Redis
// for a while was, for the other nodes, not there: they stored what they sent
// to its accounts, which it must read again for its live connections before
// they get anything newer (handlers: rejoin). The row ids say what is newer:
// a node notes the table's highest id as it goes, and asks afterwards which
// accounts have unsent rows above the mark it held before the outage began.

// RowMark is the highest row id in the table (0 when it is empty): the
// primary key's end, read without a scan.
func (s *Store) RowMark(ctx context.Context) (int64, error) {
	var id int64
	if err := s.db.QueryRowContext(ctx, s.q.rowMark).Scan(&id); err != nil {
		return 0, fmt.Errorf("offline: highest row id: %w", err)
	}
	return id, nil
}

// RecipientsAfter lists the accounts with unsent rows whose id is above
// afterID, at most limit of them: a range of the primary key, as long as the
// rows written since.
func (s *Store) RecipientsAfter(ctx context.Context, afterID int64, limit int) ([]string, error) {
	r, err := s.db.QueryContext(ctx, s.q.recipientsAfter, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("offline: recipients of rows after %d: %w", afterID, err)
	}
	defer r.Close()
	var out []string
	for r.Next() {
		var a string
		if err := r.Scan(&a); err != nil {
			return nil, fmt.Errorf("offline: recipients of rows after %d: %w", afterID, err)
		}
		out = append(out, a)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("offline: recipients of rows after %d: %w", afterID, err)
	}
	return out, nil
}
