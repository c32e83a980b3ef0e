package history

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"chatserver/internal/servicetest"
	"chatserver/offline"
)

// mariaDB opens a fresh MariaDB database with the history table migrated.
func mariaDB(tb testing.TB) *Store {
	tb.Helper()
	o, err := offline.Open(context.Background(), offline.MySQL, servicetest.MySQLDSN(tb), "app_offline")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = o.Close() })
	s, err := NewStore(o.DB(), MySQL, "app_message")
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Migrate(context.Background(), os.DirFS("../sql/history")); err != nil {
		tb.Fatal(err)
	}
	return s
}

// fill writes rows messages spread round-robin over convs conversations (the
// worst case for locality: neighbours in a conversation are convs rows apart),
// with MariaDB's sequence engine, a million rows per statement.
func fill(tb testing.TB, db *sql.DB, rows, convs int) {
	tb.Helper()
	const chunk = 1_000_000
	for from := 1; from <= rows; from += chunk {
		to := min(from+chunk-1, rows)
		q := fmt.Sprintf("INSERT INTO `app_message` (`conv`, `msg_id`, `from`, `to`, `content`, `addtime`)"+
			" SELECT CONCAT('u', seq %% %d, '|v', seq %% %d), CONCAT('m', seq), CONCAT('u', seq %% %d), CONCAT('v', seq %% %d),"+
			" 'a message of an ordinary length, about sixty bytes of text', 1700000000 + seq FROM seq_%d_to_%d",
			convs, convs, convs, convs, from, to)
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("fill %d..%d: %v", from, to, err)
		}
	}
	if _, err := db.Exec("ANALYZE TABLE `app_message`"); err != nil {
		tb.Fatal(err)
	}
}

// TestPageReadsOneIndexRange: on MariaDB the page query walks idx_conv_id
// backwards from the cursor (no filesort, no scan of the conversation or the
// table), which is what keeps a page cheap however large the table grows.
func TestPageReadsOneIndexRange(t *testing.T) {
	s := mariaDB(t)
	fill(t, s.db, 50_000, 500)
	var cursor int64
	if err := s.db.QueryRow(s.q.seqOf, "u7|v7", "m25007").Scan(&cursor); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"newest": {s.q.page, []any{"u7|v7", 51}},
		"before": {s.q.pageBefore, []any{"u7|v7", cursor, 51}},
	} {
		rows, err := s.db.Query("EXPLAIN "+q.sql, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			plan := map[string]string{}
			for i, c := range cols {
				plan[c] = vals[i].String
			}
			if plan["key"] != "idx_conv_id" || strings.Contains(plan["Extra"], "filesort") {
				t.Errorf("%s page plan = %v; want a range on idx_conv_id without filesort", name, plan)
			}
		}
		rows.Close()
	}
}

// BenchmarkPage50: a page of 50 from the middle of one conversation, on
// MariaDB, in a table of CHAT_HISTORY_BENCH_ROWS rows (default 200,000; the
// README's figure is for 10,000,000) over rows/200 conversations.
func BenchmarkPage50(b *testing.B) {
	rows := 200_000
	if v := os.Getenv("CHAT_HISTORY_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("CHAT_HISTORY_BENCH_ROWS=%q: want an integer of at least 1000", v)
		}
		rows = n
	}
	convs := rows / 200
	s := mariaDB(b)
	fill(b, s.db, rows, convs)
	ctx := context.Background()
	// The cursor: a message halfway through conversation 7.
	before := fmt.Sprint("m", rows/2/convs*convs+7)
	b.ResetTimer()
	for b.Loop() {
		page, more, err := s.Page(ctx, "u7|v7", before, 50)
		if err != nil || len(page) != 50 || !more {
			b.Fatalf("page: %d rows, more=%v, err=%v", len(page), more, err)
		}
	}
}

// BenchmarkInsert500: the history writer's statement, Store.Insert of a batch
// of 500 one-to-one messages over 1,500 conversations, on MariaDB, one batch
// at a time as the writer does; rows/s is what one node's writer can keep up
// with when the database is its only limit.
func BenchmarkInsert500(b *testing.B) {
	const batch, convs = 500, 1500
	s := mariaDB(b)
	ctx := context.Background()
	entries := make([]Entry, batch)
	n := 0
	b.ResetTimer()
	for b.Loop() {
		for i := range entries {
			n++
			c := n % convs
			entries[i] = Entry{ID: fmt.Sprint("m", n), From: fmt.Sprint("s", c), To: fmt.Sprint("r", c),
				Content: "a message of an ordinary length, about sixty bytes of text", Time: 1700000000 + int64(n)}
		}
		if err := s.Insert(ctx, entries); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
}
