package history_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sort"
	"testing"

	"github.com/rs/zerolog"

	"chatserver/history"
	"chatserver/internal/servicetest"
	"chatserver/offline"
)

// openReads migrates a history table on a fresh database of dialect and
// returns its store, the read state over it and the database.
func openReads(t *testing.T, dialect offline.Dialect, dsn string) (*history.Store, *history.Reads, *sql.DB) {
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
	for range 2 {
		if err := s.Migrate(context.Background(), migrations); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	groupsOf := func(_ context.Context, account string) ([]string, error) {
		if account == "alice" {
			return []string{"team"}, nil
		}
		return nil, nil
	}
	r, err := history.NewReads(db.DB(), history.Dialect(dialect), "app_message", groupsOf)
	if err != nil {
		t.Fatal(err)
	}
	return s, r, db.DB()
}

var readEngines = []struct {
	name    string
	dialect offline.Dialect
	dsn     func(t *testing.T) string
}{
	{"sqlite", offline.SQLite, func(t *testing.T) string { return filepath.Join(t.TempDir(), "chat.db") }},
	{"mariadb", offline.MySQL, func(t *testing.T) string { return servicetest.MySQLDSN(t) }},
}

func TestReads(t *testing.T) {
	for _, e := range readEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Run("the cursor only moves forward", func(t *testing.T) {
				s, r, _ := openReads(t, e.dialect, e.dsn(t))
				testCursor(t, s, r)
			})
			t.Run("unread counts others' messages past the cursor", func(t *testing.T) {
				s, r, _ := openReads(t, e.dialect, e.dsn(t))
				testUnread(t, s, r)
			})
			t.Run("readers of a group message", func(t *testing.T) {
				s, r, _ := openReads(t, e.dialect, e.dsn(t))
				testReaders(t, s, r)
			})
			t.Run("the cursor writer keeps the furthest move", func(t *testing.T) {
				s, r, _ := openReads(t, e.dialect, e.dsn(t))
				testCursorWriter(t, s, r)
			})
			t.Run("conversations of an account", func(t *testing.T) {
				s, r, db := openReads(t, e.dialect, e.dsn(t))
				testConversations(t, s, r, db, history.Dialect(e.dialect))
			})
		})
	}
}

// seqs inserts entries and returns their seqs by id.
func seqs(t *testing.T, s *history.Store, r *history.Reads, entries []history.Entry) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	if err := s.Insert(ctx, entries); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range entries {
		seq, from, err := r.Find(ctx, e.Conv(), e.ID)
		if err != nil || from != e.From {
			t.Fatalf("find %s = %d %q %v", e.ID, seq, from, err)
		}
		out[e.ID] = seq
	}
	return out
}

func testCursor(t *testing.T, s *history.Store, r *history.Reads) {
	ctx := context.Background()
	var batch []history.Entry
	for i := range 3 {
		batch = append(batch, history.Entry{ID: fmt.Sprint("m", i), From: "alice", To: "bob", Content: "x", Time: 1})
	}
	seq := seqs(t, s, r, batch)
	conv := history.PairConv("alice", "bob")
	if _, _, err := r.Find(ctx, history.PairConv("bob", "carol"), "m1"); err != history.ErrUnknownMessage {
		t.Fatalf("another conversation's message: %v; want ErrUnknownMessage", err)
	}
	// One statement, several moves of several accounts: each cursor only
	// moves forward, whatever order the moves come in.
	for _, step := range []struct {
		moves []history.CursorMove
		bob   string
	}{
		{[]history.CursorMove{{Account: "bob", Conv: conv, Seq: seq["m1"], ID: "m1"}}, "m1"},
		{[]history.CursorMove{{Account: "bob", Conv: conv, Seq: seq["m0"], ID: "m0"}, {Account: "carol", Conv: conv, Seq: seq["m0"], ID: "m0"}}, "m1"},
		{[]history.CursorMove{{Account: "bob", Conv: conv, Seq: seq["m2"], ID: "m2"}}, "m2"},
		{[]history.CursorMove{{Account: "bob", Conv: conv, Seq: seq["m1"], ID: "m1"}}, "m2"},
	} {
		if err := r.MoveAll(ctx, step.moves); err != nil {
			t.Fatal(err)
		}
		got, err := r.Cursor(ctx, "bob", conv)
		if err != nil || got.ID != step.bob || got.Seq != seq[step.bob] {
			t.Fatalf("after %+v bob's cursor is at %+v %v; want %s", step.moves, got, err, step.bob)
		}
		at, from, cur, err := r.FindFor(ctx, "bob", conv, "m1")
		if err != nil || at != seq["m1"] || from != "alice" || cur.ID != step.bob {
			t.Fatalf("FindFor m1 = %d %q %+v %v; want its seq and bob's cursor at %s", at, from, cur, err, step.bob)
		}
	}
	if got, _ := r.Cursor(ctx, "carol", conv); got.ID != "m0" {
		t.Fatalf("carol's cursor = %+v; want m0", got)
	}
	if _, _, cur, err := r.FindFor(ctx, "dave", conv, "m1"); err != nil || cur != (history.Cursor{}) {
		t.Fatalf("FindFor a reader with no cursor = %+v %v; want none", cur, err)
	}
	if _, _, _, err := r.FindFor(ctx, "bob", conv, "nope"); err != history.ErrUnknownMessage {
		t.Fatalf("FindFor an unknown id: %v; want ErrUnknownMessage", err)
	}
	if got, _ := r.Cursor(ctx, "alice", conv); got != (history.Cursor{}) {
		t.Fatalf("alice's cursor = %+v; want none: cursors are per reader", got)
	}
}

func testUnread(t *testing.T, s *history.Store, r *history.Reads) {
	ctx := context.Background()
	var batch []history.Entry
	for i := range history.MaxUnread + 20 {
		from, to := "alice", "bob"
		if i%100 == 7 {
			from, to = "bob", "alice" // bob's own: never unread for him
		}
		batch = append(batch, history.Entry{ID: fmt.Sprint("m", i), From: from, To: to, Content: "x", Time: 1})
		if i%10 == 0 {
			batch = append(batch, history.Entry{ID: fmt.Sprint("o", i), From: "alice", To: "carol", Content: "other", Time: 1})
		}
	}
	if err := s.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	conv := history.PairConv("alice", "bob")
	// Nothing read: alice's among the newest 1000 (m20..m1019, of which 10
	// are bob's own: m107, m207, ... m1007).
	if n, cur, err := r.Unread(ctx, "bob", conv); err != nil || n != history.MaxUnread-10 || cur.ID != "" {
		t.Fatalf("unread of %d, nothing read = %d %+v %v; want %d, alice's among the newest %d", history.MaxUnread+20, n, cur, err, history.MaxUnread-10, history.MaxUnread)
	}
	last := fmt.Sprint("m", history.MaxUnread-1) // 20 more after it, one of them (m1007) bob's
	seq, _, err := r.Find(ctx, conv, last)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MoveAll(ctx, []history.CursorMove{{Account: "bob", Conv: conv, Seq: seq, ID: last}}); err != nil {
		t.Fatal(err)
	}
	if n, cur, err := r.Unread(ctx, "bob", conv); err != nil || n != 19 || cur.ID != last {
		t.Fatalf("unread past %s = %d %+v %v; want 19 (bob's own not counted)", last, n, cur, err)
	}
	if n, _, _ := r.Unread(ctx, "carol", history.PairConv("alice", "carol")); n != (history.MaxUnread+20+9)/10 {
		t.Fatalf("carol's unread = %d; want her conversation's own %d", n, (history.MaxUnread+20+9)/10)
	}
}

func testReaders(t *testing.T, s *history.Store, r *history.Reads) {
	ctx := context.Background()
	var batch []history.Entry
	for i := range 3 {
		batch = append(batch, history.Entry{ID: fmt.Sprint("g", i), From: "alice", Group: "team", Content: "x", Time: 1})
	}
	seq := seqs(t, s, r, batch)
	conv := history.GroupConv("team")
	for reader, id := range map[string]string{"bob": "g2", "carol": "g1", "dave": "g0", "alice": "g2"} {
		if err := r.MoveAll(ctx, []history.CursorMove{{Account: reader, Conv: conv, Seq: seq[id], ID: id}}); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]int{"g0": 3, "g1": 2, "g2": 1} {
		if n, err := r.Readers(ctx, conv, seq[id], "alice"); err != nil || n != want {
			t.Fatalf("readers of %s = %d %v; want %d (its sender not counted)", id, n, err, want)
		}
	}
}

func testConversations(t *testing.T, s *history.Store, r *history.Reads, db *sql.DB, dialect history.Dialect) {
	ctx := context.Background()
	idx := history.NewConvIndex(db, dialect, "app_message", history.WriterConfig{BatchSize: 2, QueueLimit: 100}, 2, zerolog.Nop())
	entries := []history.Entry{
		{ID: "1", From: "alice", To: "bob", Time: 1},
		{ID: "2", From: "bob", To: "alice", Time: 1}, // the same conversation
		{ID: "3", From: "carol", To: "alice", Time: 1},
		{ID: "4", From: "alice", Group: "team", Time: 1}, // a group: from its members
		{ID: "5", From: "dave", To: "erin", Time: 1},     // past the remembered 2: the set starts again
		{ID: "6", From: "alice", To: "bob", Time: 1},     // written again, kept once
	}
	for _, e := range entries {
		idx.Record(e)
	}
	if err := idx.Close(ctx); err != nil {
		t.Fatal(err)
	}
	names := func(account string) string {
		cs, err := r.Conversations(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Conv+">"+c.With+c.Group)
		}
		sort.Strings(out)
		return fmt.Sprint(out)
	}
	if got := names("alice"); got != "[alice|bob>bob alice|carol>carol g:team>team]" {
		t.Fatalf("alice's conversations = %s", got)
	}
	if got := names("erin"); got != "[dave|erin>dave]" {
		t.Fatalf("erin's conversations = %s", got)
	}
	if err := s.Insert(ctx, entries[:2]); err != nil {
		t.Fatal(err)
	}
	if e, ok, err := r.Last(ctx, history.PairConv("alice", "bob")); err != nil || !ok || e.ID != "2" || e.From != "bob" {
		t.Fatalf("last of alice|bob = %+v %v %v; want 2 from bob", e, ok, err)
	}
	if _, ok, err := r.Last(ctx, history.PairConv("alice", "carol")); err != nil || ok {
		t.Fatalf("last of a conversation with no rows = %v %v; want none", ok, err)
	}
}

// BenchmarkConvIndexKnown is what the conversation index adds to a message
// of a conversation already written: the message path's whole cost of the
// conversation list.
func BenchmarkConvIndexKnown(b *testing.B) {
	db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "x.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	idx := history.NewConvIndex(db, history.SQLite, "app_message", history.WriterConfig{BatchSize: 10, QueueLimit: 10}, 10, zerolog.Nop())
	defer idx.Close(context.Background())
	e := history.Entry{ID: "1", From: "bob", To: "alice"}
	idx.Record(e) // the first: queued (and refused by the missing table: logged nowhere)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			idx.Record(e)
		}
	})
}

func testCursorWriter(t *testing.T, s *history.Store, r *history.Reads) {
	ctx := context.Background()
	var batch []history.Entry
	for i := range 5 {
		batch = append(batch, history.Entry{ID: fmt.Sprint("m", i), From: "alice", To: "bob", Content: "x", Time: 1})
	}
	seq := seqs(t, s, r, batch)
	conv := history.PairConv("alice", "bob")
	w := history.NewCursorWriter(r, 2, 3, zerolog.Nop())
	state := history.ReadState{Reads: r, W: w}
	for _, id := range []string{"m3", "m1", "m4", "m2"} { // out of order, as two devices might
		state.Queue(history.CursorMove{Account: "bob", Conv: conv, Seq: seq[id], ID: id, Time: 9})
	}
	for _, a := range []string{"carol", "dave"} {
		state.Queue(history.CursorMove{Account: a, Conv: conv, Seq: seq["m0"], ID: "m0", Time: 9})
	}
	if _, _, cur, err := state.FindFor(ctx, "bob", conv, "m2"); err != nil || cur.ID != "m4" {
		t.Fatalf("FindFor with moves waiting = %+v %v; want the furthest, m4", cur, err)
	}
	if err := state.FlushCursors(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Cursor(ctx, "bob", conv); got.ID != "m4" {
		t.Fatalf("bob's cursor written = %+v; want m4", got)
	}
	if got, _ := r.Cursor(ctx, "carol", conv); got.ID != "m0" {
		t.Fatalf("carol's cursor written = %+v; want m0", got)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	state.Queue(history.CursorMove{Account: "bob", Conv: conv, Seq: seq["m4"] + 100, ID: "late", Time: 9}) // closed: dropped
	if got, _ := r.Cursor(ctx, "bob", conv); got.ID != "m4" {
		t.Fatalf("a move after Close moved bob to %+v", got)
	}
}
