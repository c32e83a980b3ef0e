package history_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/history"
	"chatserver/internal/servicetest"
	"chatserver/offline"
)

// migrations are the real files the server embeds.
var migrations = os.DirFS("../sql/history")

func open(t *testing.T, dialect offline.Dialect, dsn string) *history.Store {
	t.Helper()
	db, err := offline.Open(context.Background(), dialect, dsn, "app_offline")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s, err := history.NewStore(db.DB(), history.Dialect(dialect), "app_message")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // migrating twice changes nothing
		if err := s.Migrate(context.Background(), migrations); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	return s
}

var engines = []struct {
	name string
	open func(t *testing.T) *history.Store
}{
	{"sqlite", func(t *testing.T) *history.Store {
		return open(t, offline.SQLite, filepath.Join(t.TempDir(), "chat.db"))
	}},
	{"mariadb", func(t *testing.T) *history.Store { return open(t, offline.MySQL, servicetest.MySQLDSN(t)) }},
}

func TestStore(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Run("pages back oldest first", func(t *testing.T) { testPaging(t, e.open(t)) })
			t.Run("a batch written twice is kept once", func(t *testing.T) { testRepeat(t, e.open(t)) })
			t.Run("retention deletes old rows only", func(t *testing.T) { testRetention(t, e.open(t)) })
			t.Run("trim keeps the newest of each conversation", func(t *testing.T) { testTrim(t, e.open(t)) })
		})
	}
}

func testPaging(t *testing.T, s *history.Store) {
	ctx := context.Background()
	var batch []history.Entry
	for i := range 7 {
		from, to := "alice", "bob"
		if i%2 == 1 {
			from, to = to, from
		}
		batch = append(batch, history.Entry{ID: fmt.Sprint("m", i), From: from, To: to, Content: fmt.Sprint("c", i, " 😀 'quote"), Time: int64(100 + i)})
		// Other conversations interleaved must not show.
		batch = append(batch, history.Entry{ID: fmt.Sprint("x", i), From: "alice", To: "carol", Content: "other", Time: int64(100 + i)})
		batch = append(batch, history.Entry{ID: fmt.Sprint("g", i), From: "alice", Group: "team", Content: "group", Time: int64(100 + i)})
	}
	if err := s.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	conv := history.PairConv("bob", "alice")
	page, more, err := s.Page(ctx, conv, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(page); got != "m4 m5 m6" || !more {
		t.Fatalf("newest page = %q more=%v, want m4 m5 m6 more=true", got, more)
	}
	if page[0].Content != "c4 😀 'quote" || page[0].From != "alice" || page[0].To != "bob" || page[0].Time != 104 {
		t.Fatalf("row = %+v", page[0])
	}
	if !(page[0].Seq < page[1].Seq && page[1].Seq < page[2].Seq) {
		t.Fatalf("seq not increasing: %+v", page)
	}
	page, more, err = s.Page(ctx, conv, page[0].ID, 3)
	if err != nil || ids(page) != "m1 m2 m3" || !more {
		t.Fatalf("second page = %q more=%v err=%v", ids(page), more, err)
	}
	page, more, err = s.Page(ctx, conv, page[0].ID, 3)
	if err != nil || ids(page) != "m0" || more {
		t.Fatalf("last page = %q more=%v err=%v", ids(page), more, err)
	}
	page, _, err = s.Page(ctx, history.GroupConv("team"), "", 2)
	if err != nil || ids(page) != "g5 g6" || page[0].Group != "team" || page[0].To != "" {
		t.Fatalf("group page = %+v err=%v", page, err)
	}
	// An id of another conversation is no cursor here.
	if _, _, err := s.Page(ctx, conv, "x3", 3); !errors.Is(err, history.ErrUnknownBefore) {
		t.Fatalf("before from another conversation: err = %v, want ErrUnknownBefore", err)
	}
}

func testRepeat(t *testing.T, s *history.Store) {
	ctx := context.Background()
	batch := []history.Entry{{ID: "a", From: "u1", To: "u2", Content: "1"}, {ID: "b", From: "u2", To: "u1", Content: "2"}}
	for range 2 {
		if err := s.Insert(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	page, _, err := s.Page(ctx, history.PairConv("u1", "u2"), "", 10)
	if err != nil || ids(page) != "a b" {
		t.Fatalf("page = %q err=%v, want a b once", ids(page), err)
	}
}

func testRetention(t *testing.T, s *history.Store) {
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	var batch []history.Entry
	for i := range 2500 { // more than one delete batch
		batch = append(batch, history.Entry{ID: fmt.Sprint("old", i), From: "a", To: "b", Time: now.Add(-48 * time.Hour).Unix()})
	}
	batch = append(batch, history.Entry{ID: "new", From: "a", To: "b", Time: now.Add(-time.Hour).Unix()})
	if err := s.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 2500 {
		t.Fatalf("prune = %d, %v; want 2500", n, err)
	}
	page, more, err := s.Page(ctx, history.PairConv("a", "b"), "", 10)
	if err != nil || ids(page) != "new" || more {
		t.Fatalf("left = %q more=%v err=%v, want only the new row", ids(page), more, err)
	}
}

func testTrim(t *testing.T, s *history.Store) {
	ctx := context.Background()
	var batch []history.Entry
	for i := range 2600 { // more than one delete batch past the kept count
		batch = append(batch, history.Entry{ID: fmt.Sprint("ab", i), From: "a", To: "b"})
		if i < 5 {
			batch = append(batch, history.Entry{ID: fmt.Sprint("ac", i), From: "a", To: "c"})
		}
	}
	if err := s.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	n, err := s.Trim(ctx, []string{history.PairConv("a", "b"), history.PairConv("a", "c"), "nobody|here"}, 10)
	if err != nil || n != 2590 {
		t.Fatalf("trim = %d, %v; want 2590", n, err)
	}
	page, more, err := s.Page(ctx, history.PairConv("a", "b"), "", 50)
	if err != nil || len(page) != 10 || more || page[0].ID != "ab2590" || page[9].ID != "ab2599" {
		t.Fatalf("a|b left = %q more=%v err=%v; want the newest 10", ids(page), more, err)
	}
	page, _, err = s.Page(ctx, history.PairConv("a", "c"), "", 50)
	if err != nil || len(page) != 5 {
		t.Fatalf("a|c left = %q err=%v; want its 5 rows untouched", ids(page), err)
	}
}

func TestWriterBatchesAndFlushes(t *testing.T) {
	s := engines[0].open(t)
	w := history.NewWriter(s, history.WriterConfig{BatchSize: 2, QueueLimit: 100, TrackConversations: 10}, zerolog.Nop())
	for i := range 5 {
		w.Record(history.Entry{ID: fmt.Sprint(i), From: "a", To: "b", Content: "x"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	page, _, err := s.Page(ctx, history.PairConv("a", "b"), "", 10)
	if err != nil || ids(page) != "0 1 2 3 4" {
		t.Fatalf("page = %q err=%v, want every recorded entry in order", ids(page), err)
	}
	w.Record(history.Entry{ID: "g", From: "a", Group: "team"})
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	touched := w.Touched()
	sort.Strings(touched)
	if strings.Join(touched, " ") != "a|b g:team" {
		t.Fatalf("touched = %q; want the two conversations written", touched)
	}
	if again := w.Touched(); len(again) != 0 {
		t.Fatalf("touched again = %q; want none since the last call", again)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	w.Record(history.Entry{ID: "late", From: "a", To: "b"}) // after Close: dropped, no panic
}

func ids(es []history.Entry) string {
	out := ""
	for i, e := range es {
		if i > 0 {
			out += " "
		}
		out += e.ID
	}
	return out
}
