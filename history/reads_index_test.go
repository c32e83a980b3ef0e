package history

import (
	"context"
	"database/sql"
	"strings"
	"testing"
)

// explain returns the rows of EXPLAIN q, each as column -> value.
func explain(t *testing.T, db *sql.DB, q string, args ...any) []map[string]string {
	t.Helper()
	rows, err := db.Query("EXPLAIN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]string
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
		out = append(out, plan)
	}
	return out
}

// TestReadStateUsesIndexes: on MariaDB the unread count walks idx_conv_id
// past the cursor, the group readers count idx_conv_seq, and the cursor and
// the conversation list their primary keys: nothing scans a table, so the
// cost follows the unread messages, the members and the conversations, not
// the size of the history.
func TestReadStateUsesIndexes(t *testing.T) {
	s := mariaDB(t)
	fill(t, s.db, 50_000, 500)
	r, err := NewReads(s.db, MySQL, "app_message", func(context.Context, string) ([]string, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		acc := "r" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, err := s.db.Exec("INSERT INTO `app_message_read` (`account`, `conv`, `seq`, `msg_id`) VALUES (?, ?, ?, 'm')", acc, "g:team", i); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.Exec("INSERT INTO `app_message_conv` (`account`, `conv`, `peer`) VALUES (?, ?, 'x')", acc, acc+"|x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.Exec("ANALYZE TABLE `app_message_read`, `app_message_conv`"); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]struct {
		sql, table, key string
		args            []any
	}{
		"unread":  {r.q.unread, "app_message", "idx_conv_id", []any{"u7|v7", 25007, "v7"}},
		"readers": {r.q.readers, "app_message_read", "idx_conv_seq", []any{"g:team", 150, "ra"}},
		"cursor":  {r.q.cursor, "app_message_read", "PRIMARY", []any{"raa", "g:team"}},
		"convs":   {r.q.convs, "app_message_conv", "PRIMARY", []any{"raa"}},
		"find":    {r.q.find, "app_message", "uniq_conv_msg", []any{"u7|v7", "m25007"}},
		// The read frame's query: the message (alias m), the cursor (c).
		"findFor message": {r.q.findFor, "m", "uniq_conv_msg", []any{"raa", "u7|v7", "m25007"}},
		"findFor cursor":  {r.q.findFor, "c", "PRIMARY", []any{"raa", "u7|v7", "m25007"}},
	} {
		found := false
		for _, p := range explain(t, s.db, q.sql, q.args...) {
			if p["table"] != q.table {
				continue
			}
			found = true
			if p["key"] != q.key || p["type"] == "ALL" || strings.Contains(p["Extra"], "filesort") {
				t.Errorf("%s plan = %v; want %s through %s", name, p, q.table, q.key)
			}
		}
		if !found {
			t.Errorf("%s plan does not read %s", name, q.table)
		}
	}
}
