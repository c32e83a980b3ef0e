package offline

import (
	"context"
	"database/sql"
	"fmt"

	"chatserver/internal/sqlin"
)

// In a reconnect storm most accounts have nothing waiting; without the probe
// every init would cost a round trip to the database, capping the connect rate
// at what the database answers one query at a time. Inits that arrive together
// share one "who of these has unsent rows?" query.

// maxBatch bounds the accounts or rows of one coalesced statement.
const maxBatch = 500

func newProbe(db *sql.DB, dialect Dialect, table string) *coalescer[string, bool] {
	cast := "CAST(`to` AS BINARY)"
	if dialect == SQLite {
		cast = "CAST(`to` AS BLOB)"
	}
	prefix := "SELECT DISTINCT " + cast + " FROM `" + table + "` WHERE `status` = 0 AND `to` IN ("
	return newCoalescer("probe", maxBatch, func(ctx context.Context, accounts []string) ([]bool, error) {
		found, err := probeQuery(ctx, db, prefix, accounts)
		if err != nil {
			return nil, err
		}
		out := make([]bool, len(accounts))
		for i, a := range accounts {
			_, out[i] = found[a]
		}
		return out, nil
	})
}

// probeQuery returns the accounts (compared byte for byte, whatever the table's
// collation) that have unsent rows.
func probeQuery(ctx context.Context, db *sql.DB, prefix string, accounts []string) (map[string]struct{}, error) {
	q, args := sqlin.List(prefix, accounts)
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("offline: probe %d accounts: %w", len(accounts), err)
	}
	defer rows.Close()
	found := make(map[string]struct{})
	for rows.Next() {
		var to []byte
		if err := rows.Scan(&to); err != nil {
			return nil, fmt.Errorf("offline: probe scan: %w", err)
		}
		found[string(to)] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("offline: probe read: %w", err)
	}
	return found, nil
}
