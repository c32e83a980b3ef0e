package offline_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	"chatserver/offline"
)

// TestChangeUnsent: a recall deletes exactly the unsent copies of the message
// for the accounts named, an edit rewrites them; sent rows, other messages
// and other accounts stay as they were.
func TestChangeUnsent(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := e.open(t)
			MustMigrate(t, s)
			ctx := context.Background()
			msgs := []offline.Message{
				{To: "bob", From: "alice", Content: "hi", ID: "m1", Group: "team"},
				{To: "carol", From: "alice", Content: "hi", ID: "m1", Group: "team"},
				{To: "dave", From: "alice", Content: "hi", ID: "m1", Group: "team"},
				{To: "bob", From: "alice", Content: "keep", ID: "m2"},
			}
			if err := s.Insert(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			rows, _, _, err := s.Pending(ctx, "carol", "", 0, 10)
			if err != nil || len(rows) != 1 {
				t.Fatalf("carol's = %v, %v", rows, err)
			}
			if err := s.MarkSent(ctx, []int64{rows[0].ID}); err != nil { // carol got it already
				t.Fatal(err)
			}
			got, err := s.EditUnsent(ctx, "m1", []string{"bob", "carol"}, "edited 😀")
			if err != nil || strings.Join(got, ",") != "bob" {
				t.Fatalf("edit = %v, %v; want bob's only (carol's was sent, dave's not asked)", got, err)
			}
			if rows, _, _, _ := s.Pending(ctx, "bob", "", 0, 10); len(rows) != 2 || rows[0].Content != "edited 😀" || rows[1].Content != "keep" {
				t.Fatalf("bob's after the edit = %+v; want m1 edited, m2 as it was", rows)
			}
			got, err = s.WithdrawUnsent(ctx, "m1", []string{"bob", "carol", "dave", "erin"})
			sort.Strings(got)
			if err != nil || strings.Join(got, ",") != "bob,dave" {
				t.Fatalf("withdraw = %v, %v; want bob and dave", got, err)
			}
			rows, _, _, err = s.Pending(ctx, "bob", "", 0, 10)
			if err != nil || len(rows) != 1 || rows[0].Content != "keep" {
				t.Fatalf("bob's left = %+v, %v; want only m2", rows, err)
			}
			if rows, _, _, _ := s.Pending(ctx, "dave", "", 0, 10); len(rows) != 0 {
				t.Fatalf("dave's left = %+v", rows)
			}
			if got, err := s.WithdrawUnsent(ctx, "m1", []string{"bob"}); err != nil || len(got) != 0 {
				t.Fatalf("withdraw again = %v, %v; want nothing", got, err)
			}
		})
	}
}
