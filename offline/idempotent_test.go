package offline_test

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"chatserver/offline"
)

// Writes are idempotent: a batch written again (its first answer came too late,
// or a crash came between the spool's insert and its delete) leaves one row per
// message and recipient.

func TestInsertIsIdempotent(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := e.open(t)
			MustMigrate(t, s)
			ctx := context.Background()
			batch := func(from, to int) []offline.Message {
				var msgs []offline.Message
				for i := from; i < to; i++ {
					msgs = append(msgs, offline.Message{To: "bob", From: "alice", Content: fmt.Sprint(i), ID: fmt.Sprint("m", i)})
				}
				return msgs
			}
			mustInsert(t, s, batch(0, 10))
			mustInsert(t, s, batch(0, 10))  // the same batch again
			mustInsert(t, s, batch(5, 15))  // overlapping
			mustInsert(t, s, batch(14, 20)) // overlapping by one
			// A group message: one id, one row per member.
			group := []offline.Message{
				{To: "bob", From: "alice", Group: "team", Content: "g", ID: "g1"},
				{To: "carol", From: "alice", Group: "team", Content: "g", ID: "g1"},
				{To: "dave", From: "alice", Group: "team", Content: "g", ID: "g1"},
			}
			mustInsert(t, s, group)
			mustInsert(t, s, group)
			// Legacy rows (no id, as the PHP side writes them) may repeat.
			legacy := []offline.Message{{To: "bob", From: "php", Content: "same"}, {To: "bob", From: "php", Content: "same"}}
			mustInsert(t, s, legacy)
			mustInsert(t, s, legacy)

			rows, _, _, err := s.Pending(ctx, "bob", "", 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				got = append(got, r.MessageID()[:1]+":"+r.Content)
			}
			want := []string{}
			for i := 0; i < 20; i++ {
				want = append(want, fmt.Sprint("m:", i))
			}
			want = append(want, "g:g")
			for range 4 {
				want = append(want, "o:same")
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("bob's rows = %v\nwant        %v", got, want)
			}
			for _, member := range []string{"carol", "dave"} {
				rows, _, _, err := s.Pending(ctx, member, "", 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) != 1 || rows[0].MsgID != "g1" {
					t.Fatalf("%s's rows = %+v; want the group message once", member, rows)
				}
			}
			// A repeat in one statement is skipped too.
			mustInsert(t, s, []offline.Message{{To: "erin", From: "a", ID: "x"}, {To: "erin", From: "a", ID: "x"}})
			if rows, _, _, _ := s.Pending(ctx, "erin", "", 0, 10); len(rows) != 1 {
				t.Fatalf("erin has %d rows; want 1", len(rows))
			}
		})
	}
}

// TestInsertStillRefusesBadData: skipping a repeat must not skip data errors
// (INSERT IGNORE would store a too-long value cut instead of failing).
func TestInsertStillRefusesBadData(t *testing.T) {
	s := openMySQL(t)
	MustMigrate(t, s)
	long := strings.Repeat("x", 65) // `to` is varchar(64)
	err := s.Insert(context.Background(), []offline.Message{{To: long, From: "alice", Content: "hi", ID: "m1"}})
	if err == nil {
		t.Fatal("a 65-character account was accepted into varchar(64); want an error")
	}
	var n int
	if err := s.DB().QueryRow("SELECT COUNT(*) FROM app_offline").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows after a refused insert; want 0", n)
	}
}

// TestMigrationRemovesRepeats: a table that earlier versions filled with
// repeats (same recipient, same msg_id) keeps the first of each, every legacy
// row (NULL msg_id), and gets the unique key; migrating again changes nothing.
func TestMigrationRemovesRepeats(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := e.open(t)
			ctx := context.Background()
			if err := s.Migrate(ctx, migrationsBefore(t, "unique_msg_id"), map[string]string{"group_table": "app_group_member"}); err != nil {
				t.Fatalf("migrate the previous schema: %v", err)
			}
			db := s.DB()
			// What the spool and a retry left: m1 three times, m2 twice, g1 for two
			// members twice each, and legacy rows that look alike.
			for _, r := range [][3]string{
				{"bob", "m1", "a"}, {"bob", "m2", "b"}, {"bob", "m1", "a"}, {"bob", "", "legacy"},
				{"bob", "m1", "a"}, {"bob", "", "legacy"}, {"bob", "m2", "b"}, {"bob", "m3", "c"},
				{"bob", "g1", "g"}, {"carol", "g1", "g"}, {"bob", "g1", "g"}, {"carol", "g1", "g"}, {"carol", "", "legacy"},
			} {
				var id any
				if r[1] != "" {
					id = r[1]
				}
				if _, err := db.ExecContext(ctx, "INSERT INTO app_offline (`to`, `from`, `content`, `msg_id`) VALUES (?, 'alice', ?, ?)", r[0], r[2], id); err != nil {
					t.Fatal(err)
				}
			}
			want := "1 bob m1,2 bob m2,4 bob -,6 bob -,8 bob m3,9 bob g1,10 carol g1,13 carol -"
			if got := tableRows(t, s); got == want {
				t.Fatal("the fixture has no repeats")
			}
			MustMigrate(t, s)
			if got := tableRows(t, s); got != want {
				t.Fatalf("after migrate: %s\nwant           %s", got, want)
			}
			MustMigrate(t, s)
			if got := tableRows(t, s); got != want {
				t.Fatalf("after migrating again: %s\nwant                   %s", got, want)
			}
			// The key is on: a repeat is skipped, a new message is not.
			mustInsert(t, s, []offline.Message{{To: "bob", From: "alice", ID: "m1"}, {To: "bob", From: "alice", ID: "m4"}})
			if got := tableRows(t, s); !strings.HasPrefix(got, want+",") || strings.Count(got, "m4") != 1 || strings.Count(got, "m1") != 1 {
				t.Fatalf("after inserting m1 again and m4: %s", got)
			}
		})
	}
}

// migrationsBefore is the real migrations without the files whose name
// contains part: the schema as an earlier version left it.
func migrationsBefore(t *testing.T, part string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(migrations, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, part) {
			return err
		}
		body, err := fs.ReadFile(migrations, p)
		out[p] = &fstest.MapFile{Data: body}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no migrations found")
	}
	return out
}

// tableRows lists every row as "id to msg_id" ("-" for NULL), in id order.
func tableRows(t *testing.T, s *offline.Store) string {
	t.Helper()
	r, err := s.DB().Query("SELECT `id`, `to`, COALESCE(`msg_id`, '-') FROM app_offline ORDER BY `id`")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for r.Next() {
		var (
			id        int64
			to, msgID string
		)
		if err := r.Scan(&id, &to, &msgID); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(id, " ", to, " ", msgID))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, ",")
}

func mustInsert(t *testing.T, s *offline.Store, msgs []offline.Message) {
	t.Helper()
	if err := s.Insert(context.Background(), msgs); err != nil {
		t.Fatalf("insert: %v", err)
	}
}
