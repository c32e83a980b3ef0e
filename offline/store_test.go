package offline_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/internal/servicetest"
	"chatserver/offline"
)

// migrations are the real files the server embeds.
var migrations = os.DirFS("../sql")

func openSQLite(t *testing.T) *offline.Store {
	t.Helper()
	s, err := offline.Open(context.Background(), offline.SQLite, filepath.Join(t.TempDir(), "chat.db"), "app_offline")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openMySQL(t *testing.T) *offline.Store {
	t.Helper()
	s, err := offline.Open(context.Background(), offline.MySQL, servicetest.MySQLDSN(t), "app_offline")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var engines = []struct {
	name string
	open func(t *testing.T) *offline.Store
}{
	{"sqlite", openSQLite},
	{"mariadb", openMySQL},
}

// MustMigrate migrates and fails the test on error.
func MustMigrate(t *testing.T, s *offline.Store) {
	t.Helper()
	if err := s.Migrate(context.Background(), migrations, map[string]string{"group_table": "app_group_member"}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

func TestStoreContract(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Run("migrate twice", func(t *testing.T) {
				s := e.open(t)
				MustMigrate(t, s)
				MustMigrate(t, s)
			})
			t.Run("insert keeps order and drains by id", func(t *testing.T) { testOrder(t, e.open(t)) })
			t.Run("peer filter", func(t *testing.T) { testPeerFilter(t, e.open(t)) })
			t.Run("mark sent marks exactly the ids", func(t *testing.T) { testMarkExact(t, e.open(t)) })
			t.Run("emoji and quotes round trip", func(t *testing.T) { testRoundTrip(t, e.open(t)) })
			t.Run("writer batches and flushes", func(t *testing.T) { testWriter(t, e.open(t)) })
			t.Run("recipients of rows after a mark", func(t *testing.T) { testRecipientsAfter(t, e.open(t)) })
		})
	}
}

func testOrder(t *testing.T, s *offline.Store) {
	MustMigrate(t, s)
	ctx := context.Background()
	var msgs []offline.Message
	for i := 0; i < 1200; i++ {
		msgs = append(msgs, offline.Message{To: "bob", From: "alice", Content: fmt.Sprint(i), AddTime: 1700000000})
	}
	if err := s.Insert(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	var got []string
	var after int64
	for {
		rows, next, more, err := s.Pending(ctx, "bob", "", after, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			got = append(got, r.Content)
			if r.From != "alice" || r.To != "bob" || r.AddTime != 1700000000 {
				t.Fatalf("row = %+v; want from alice to bob at 1700000000", r)
			}
		}
		if !more {
			break
		}
		after = next
	}
	if len(got) != 1200 {
		t.Fatalf("pending rows = %d; want 1200", len(got))
	}
	for i, c := range got {
		if c != fmt.Sprint(i) {
			t.Fatalf("row %d has content %q; want %q (order lost)", i, c, fmt.Sprint(i))
		}
	}
}

func testPeerFilter(t *testing.T, s *offline.Store) {
	MustMigrate(t, s)
	ctx := context.Background()
	err := s.Insert(ctx, []offline.Message{
		{To: "bob", From: "alice", Content: "a1"},
		{To: "bob", From: "carol", Content: "c1"},
		{To: "bob", From: "alice", Content: "a2"},
		{To: "Bob", From: "alice", Content: "other account"},
		{To: "dave", From: "alice", Content: "not bob"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, _, _, err := s.Pending(ctx, "bob", "alice", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Content != "a1" || rows[1].Content != "a2" {
		t.Fatalf("pending from alice = %+v; want a1, a2", rows)
	}
	all, _, _, err := s.Pending(ctx, "bob", "", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("pending for bob = %+v; want 3 rows (not Bob's, not dave's)", all)
	}
}

func testMarkExact(t *testing.T, s *offline.Store) {
	MustMigrate(t, s)
	ctx := context.Background()
	if err := s.Insert(ctx, []offline.Message{{To: "bob", From: "a", Content: "1"}, {To: "bob", From: "a", Content: "2"}}); err != nil {
		t.Fatal(err)
	}
	rows, _, _, err := s.Pending(ctx, "bob", "", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, []int64{rows[0].ID}); err != nil {
		t.Fatal(err)
	}
	// A row inserted after the read must stay pending: the legacy server marked
	// every row of the pair and lost this one.
	if err := s.Insert(ctx, []offline.Message{{To: "bob", From: "a", Content: "3"}}); err != nil {
		t.Fatal(err)
	}
	left, _, _, err := s.Pending(ctx, "bob", "", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0].Content != "2" || left[1].Content != "3" {
		t.Fatalf("pending after marking row 1 = %+v; want 2, 3", left)
	}
}

func testRoundTrip(t *testing.T, s *offline.Store) {
	MustMigrate(t, s)
	ctx := context.Background()
	content := `it's "quoted" \ 'single' ; DROP TABLE app_offline; -- 😀 中文`
	if err := s.Insert(ctx, []offline.Message{{To: "bob'; --", From: "a\"b", Content: content}}); err != nil {
		t.Fatal(err)
	}
	rows, _, _, err := s.Pending(ctx, "bob'; --", "a\"b", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Content != content {
		t.Fatalf("round trip = %+v; want content %q", rows, content)
	}
}

func testWriter(t *testing.T, s *offline.Store) {
	MustMigrate(t, s)
	ctx := context.Background()
	w := offline.NewWriter(s, offline.WriterConfig{BatchSize: 100}, zerolog.New(zerolog.NewTestWriter(t)))
	for i := 0; i < 1000; i++ {
		if _, err := w.Enqueue(offline.Message{To: "bob", From: "alice", Content: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	rows, _, _, err := s.Pending(ctx, "bob", "", 0, 2000)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1000 {
		t.Fatalf("rows after flush = %d; want 1000", len(rows))
	}
	for i, r := range rows {
		if r.Content != fmt.Sprint(i) {
			t.Fatalf("row %d = %q; want %q", i, r.Content, fmt.Sprint(i))
		}
	}
	if _, err := w.Enqueue(offline.Message{To: "bob", From: "alice", Content: "last"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(fctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Enqueue(offline.Message{To: "bob"}); err != offline.ErrClosed {
		t.Fatalf("enqueue after close = %v; want ErrClosed", err)
	}
	rows, _, _, _ = s.Pending(ctx, "bob", "", 0, 2000)
	if len(rows) != 1001 || rows[1000].Content != "last" {
		t.Fatalf("close did not write the queued message: %d rows", len(rows))
	}
}

var _ fs.FS = migrations

func TestHasPending(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := e.open(t)
			MustMigrate(t, s)
			ctx := context.Background()
			if err := s.Insert(ctx, []offline.Message{{To: "Bob", From: "a", Content: "x"}, {To: "carol", From: "a", Content: "y"}}); err != nil {
				t.Fatal(err)
			}
			rows, _, _, _ := s.Pending(ctx, "carol", "", 0, 10)
			_ = s.MarkSent(ctx, []int64{rows[0].ID})
			// Many at once, as in a reconnect storm: they share queries.
			want := map[string]bool{"Bob": true, "bob": false, "carol": false, "dave": false}
			errs := make(chan error, 400)
			for i := 0; i < 100; i++ {
				for acct, w := range want {
					go func() {
						got, err := s.HasPending(ctx, acct)
						if err == nil && got != w {
							err = fmt.Errorf("HasPending(%q) = %v; want %v", acct, got, w)
						}
						errs <- err
					}()
				}
			}
			for i := 0; i < 400; i++ {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestMarkSentManyAtOnce: concurrent drains share UPDATEs, and more ids than one
// statement may carry are marked in one transaction.
func TestMarkSentManyAtOnce(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := e.open(t)
			MustMigrate(t, s)
			ctx := context.Background()
			var msgs []offline.Message
			for i := 0; i < 12000; i++ {
				msgs = append(msgs, offline.Message{To: fmt.Sprint("u", i%40), From: "a", Content: "x"})
			}
			for len(msgs) > 0 {
				n := min(len(msgs), 2000)
				if err := s.Insert(ctx, msgs[:n]); err != nil {
					t.Fatal(err)
				}
				msgs = msgs[n:]
			}
			errs := make(chan error, 40)
			for u := 0; u < 40; u++ {
				go func() {
					rows, _, _, err := s.Pending(ctx, fmt.Sprint("u", u), "", 0, 1000)
					if err == nil {
						ids := make([]int64, len(rows))
						for i, r := range rows {
							ids[i] = r.ID
						}
						err = s.MarkSent(ctx, ids)
					}
					errs <- err
				}()
			}
			for i := 0; i < 40; i++ {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			var left int
			if err := s.DB().QueryRow("SELECT COUNT(*) FROM app_offline WHERE status = 0").Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left != 0 {
				t.Fatalf("%d rows left unsent; want 0", left)
			}
		})
	}
}

func testRecipientsAfter(t *testing.T, s *offline.Store) {
	MustMigrate(t, s)
	ctx := context.Background()
	if m, err := s.RowMark(ctx); err != nil || m != 0 {
		t.Fatalf("empty table: mark %d, %v; want 0", m, err)
	}
	if err := s.Insert(ctx, []offline.Message{{To: "old", From: "a", Content: "1"}, {To: "sent", From: "a", Content: "2"}}); err != nil {
		t.Fatal(err)
	}
	mark, err := s.RowMark(ctx)
	if err != nil || mark == 0 {
		t.Fatalf("mark %d, %v", mark, err)
	}
	if err := s.Insert(ctx, []offline.Message{{To: "new", From: "a", Content: "3"}, {To: "new", From: "b", Content: "4"},
		{To: "sent", From: "a", Content: "5"}, {To: "o'k", From: "a", Content: "6"}}); err != nil {
		t.Fatal(err)
	}
	rows, _, _, err := s.Pending(ctx, "sent", "", mark, 10)
	if err != nil || len(rows) != 1 {
		t.Fatalf("pending for sent: %v, %v", rows, err)
	}
	if err := s.MarkSent(ctx, []int64{rows[0].ID}); err != nil {
		t.Fatal(err)
	}
	got, err := s.RecipientsAfter(ctx, mark, 100)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if want := []string{"new", "o'k"}; !slices.Equal(got, want) {
		t.Fatalf("recipients after the mark = %q; want %q (unsent rows above it only, each account once)", got, want)
	}
	if got, err := s.RecipientsAfter(ctx, mark, 1); err != nil || len(got) != 1 {
		t.Fatalf("limit 1: %q, %v", got, err)
	}
}
