package history_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"chatserver/history"
)

func TestRecallAndSync(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Run("recall and edit show in pages", func(t *testing.T) { testChanges(t, e.open(t)) })
			t.Run("after reads the gap in order", func(t *testing.T) { testAfter(t, e.open(t)) })
			t.Run("pending events are kept per account", func(t *testing.T) { testPending(t, e.open(t)) })
			t.Run("retention takes changes and old events", func(t *testing.T) { testPruneChanges(t, e.open(t)) })
		})
	}
}

func testChanges(t *testing.T, s *history.Store) {
	ctx := context.Background()
	conv := history.PairConv("alice", "bob")
	var batch []history.Entry
	for i := range 4 {
		batch = append(batch, history.Entry{ID: fmt.Sprint("m", i), From: "alice", To: "bob", Content: fmt.Sprint("c", i), Time: 100})
	}
	// The same id in another conversation must not change.
	batch = append(batch, history.Entry{ID: "m1", From: "alice", To: "carol", Content: "other", Time: 100})
	if err := s.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Recall(ctx, conv, "m1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(ctx, conv, "m2", "fixed 😀", 150); err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(ctx, conv, "m2", "fixed 😀", 160); err != nil { // the same content again: the time moves
		t.Fatal(err)
	}
	page, _, err := s.Page(ctx, conv, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 4 || !page[1].Recalled || page[1].Content != "" || page[2].Content != "fixed 😀" || page[2].Edited != 160 ||
		page[0].Recalled || page[0].Edited != 0 || page[0].Content != "c0" || page[3].Recalled {
		t.Fatalf("page = %+v", page)
	}
	found, err := s.Find(ctx, conv, "m1")
	if err != nil || !found.Recalled || found.From != "alice" || found.Time != 100 {
		t.Fatalf("find m1 = %+v, %v", found, err)
	}
	other, err := s.Find(ctx, history.PairConv("alice", "carol"), "m1")
	if err != nil || other.Recalled || other.Content != "other" {
		t.Fatalf("the other conversation's m1 = %+v, %v; want untouched", other, err)
	}
	if _, err := s.Find(ctx, conv, "nope"); !errors.Is(err, history.ErrUnknownMessage) {
		t.Fatalf("find unknown: %v", err)
	}
	if err := s.Recall(ctx, conv, "nope"); !errors.Is(err, history.ErrUnknownMessage) {
		t.Fatalf("recall unknown: %v", err)
	}
	if err := s.Recall(ctx, conv, "m1"); err != nil { // again: no error, still recalled
		t.Fatal(err)
	}
}

func testAfter(t *testing.T, s *history.Store) {
	ctx := context.Background()
	var batch []history.Entry
	for i := range 6 {
		batch = append(batch, history.Entry{ID: fmt.Sprint("g", i), From: "alice", Group: "team", Content: fmt.Sprint(i)})
		batch = append(batch, history.Entry{ID: fmt.Sprint("x", i), From: "alice", To: "bob", Content: "other"})
	}
	if err := s.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	conv := history.GroupConv("team")
	all, _, err := s.Page(ctx, conv, "", 10)
	if err != nil || len(all) != 6 {
		t.Fatalf("page = %v, %v", all, err)
	}
	if err := s.Recall(ctx, conv, "g4"); err != nil {
		t.Fatal(err)
	}
	got, more, err := s.After(ctx, conv, all[1].Seq, 3)
	if err != nil || ids(got) != "g2 g3 g4" || !more || !got[2].Recalled {
		t.Fatalf("after g1 = %q more=%v err=%v (%+v)", ids(got), more, err, got)
	}
	got, more, err = s.After(ctx, conv, got[2].Seq, 3)
	if err != nil || ids(got) != "g5" || more {
		t.Fatalf("after g4 = %q more=%v err=%v", ids(got), more, err)
	}
	got, more, err = s.After(ctx, conv, 0, 50)
	if err != nil || ids(got) != "g0 g1 g2 g3 g4 g5" || more {
		t.Fatalf("after 0 = %q more=%v err=%v", ids(got), more, err)
	}
}

func testPending(t *testing.T, s *history.Store) {
	ctx := context.Background()
	evs := []history.Event{
		{To: "bob", Kind: history.KindRecall, ID: "m1", From: "alice"},
		{To: "carol", Kind: history.KindEdit, ID: "m2", From: "alice", Group: "team", Content: "new 😀", Time: 7},
		{To: "bob", Kind: history.KindEdit, ID: "m2", From: "alice", Group: "team", Content: "new", Time: 7},
	}
	if err := s.SavePending(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Pending(ctx, "bob", 10)
	if err != nil || len(got) != 2 || got[0].ID != "m1" || got[0].Kind != "recall" || got[1].Content != "new" || got[1].Group != "team" || got[1].Time != 7 {
		t.Fatalf("bob's = %+v, %v", got, err)
	}
	if err := s.DeletePending(ctx, []int64{got[0].Seq, got[1].Seq}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Pending(ctx, "bob", 10); err != nil || len(got) != 0 {
		t.Fatalf("bob's after delete = %+v, %v", got, err)
	}
	if got, err := s.Pending(ctx, "carol", 10); err != nil || len(got) != 1 || got[0].Content != "new 😀" {
		t.Fatalf("carol's = %+v, %v; want hers untouched", got, err)
	}
}

func testPruneChanges(t *testing.T, s *history.Store) {
	ctx := context.Background()
	conv := history.PairConv("alice", "bob")
	old := history.Entry{ID: "m1", From: "alice", To: "bob", Content: "old", Time: 100}
	kept := history.Entry{ID: "m2", From: "alice", To: "bob", Content: "kept", Time: 5000}
	if err := s.Insert(ctx, []history.Entry{old, kept}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m2"} {
		if err := s.Recall(ctx, conv, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SavePending(ctx, []history.Event{
		{To: "bob", Kind: history.KindRecall, ID: "m1", From: "alice", Time: 100},
		{To: "bob", Kind: history.KindRecall, ID: "m2", From: "alice", Time: 5000},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, time.Unix(1000, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.PruneChanges(ctx, time.Unix(1000, 0)); err != nil {
		t.Fatal(err)
	}
	// The same id written again (a client retrying long after) is not recalled.
	if err := s.Insert(ctx, []history.Entry{old}); err != nil {
		t.Fatal(err)
	}
	page, _, err := s.Page(ctx, conv, "", 10)
	if err != nil || ids(page) != "m2 m1" || !page[0].Recalled || page[1].Recalled || page[1].Content != "old" {
		t.Fatalf("page = %+v, %v; want m2 still recalled, the new m1 not", page, err)
	}
	got, err := s.Pending(ctx, "bob", 10)
	if err != nil || len(got) != 1 || got[0].ID != "m2" {
		t.Fatalf("pending = %+v, %v; want only the event after the cutoff", got, err)
	}
}
