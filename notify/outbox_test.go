package notify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"chatserver/internal/servicetest"
	"chatserver/offline"
)

// openOutbox migrates an outbox (twice: migrations are idempotent) on the
// embedded SQLite file or a fresh MariaDB database.
func openOutbox(t *testing.T, engine string) *Outbox {
	t.Helper()
	ctx := context.Background()
	var (
		st  *offline.Store
		err error
	)
	switch engine {
	case "sqlite":
		st, err = offline.Open(ctx, offline.SQLite, filepath.Join(t.TempDir(), "chat.db"), "app_offline")
	case "mariadb":
		st, err = offline.Open(ctx, offline.MySQL, servicetest.MySQLDSN(t), "app_offline")
	}
	if err != nil {
		t.Fatalf("open %s: %v", engine, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	out, err := NewOutbox(st.DB(), string(st.Dialect()), "app_notify_outbox")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := out.Migrate(ctx, os.DirFS("../sql/notify")); err != nil {
			t.Fatalf("migrate (run %d): %v", i+1, err)
		}
	}
	return out
}

// Nodes claiming at once each get distinct rows, every due row exactly once
// (a claim that deadlocks with another on MariaDB skips the row, left due);
// a claim holds a row for its lease, after which another node gets it (the
// first node died); Retry counts the attempt and delays the row, Done removes it.
func TestOutboxClaim(t *testing.T) {
	for _, engine := range []string{"sqlite", "mariadb"} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			out := openOutbox(t, engine)
			now := time.Now()
			const rows = 40
			for i := 0; i < rows; i++ {
				if err := out.Add(ctx, fmt.Sprint("ev", i), KindMessages, "acct", []byte(`{}`), now); err != nil {
					t.Fatal(err)
				}
			}
			var (
				mu     sync.Mutex
				seen   = map[string]string{}
				double []string
				wg     sync.WaitGroup
			)
			for n := 0; n < 4; n++ {
				node := fmt.Sprint("node", n)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						got, err := out.Claim(ctx, node, now, time.Minute, 8)
						if err != nil {
							t.Errorf("%s: claim: %v", node, err)
							return
						}
						if len(got) == 0 {
							return
						}
						mu.Lock()
						for _, r := range got {
							if prev, ok := seen[r.EventID]; ok {
								double = append(double, r.EventID+" by "+prev+" and "+node)
							}
							seen[r.EventID] = node
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			// A claim that lost a lock conflict left its row due: one more
			// round, as the next tick of any node would, takes what is left.
			rest, err := out.Claim(ctx, "sweeper", now, time.Minute, rows)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rest {
				if prev, ok := seen[r.EventID]; ok {
					double = append(double, r.EventID+" by "+prev+" and sweeper")
				}
				seen[r.EventID] = "sweeper"
			}
			if len(double) > 0 || len(seen) != rows {
				t.Fatalf("claimed %d distinct rows of %d; twice: %v", len(seen), rows, double)
			}
			// Within the lease nobody gets them; after it, another node does.
			if got, err := out.Claim(ctx, "late", now.Add(59*time.Second), time.Minute, rows); err != nil || len(got) != 0 {
				t.Fatalf("claim within the lease = %d rows, %v; want none", len(got), err)
			}
			got, err := out.Claim(ctx, "survivor", now.Add(time.Minute), time.Minute, rows)
			if err != nil || len(got) != rows {
				t.Fatalf("claim after the lease = %d rows, %v; want %d", len(got), err, rows)
			}
			r := got[0]
			if err := out.Retry(ctx, r.ID, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			for _, o := range got[1:] {
				if err := out.Done(ctx, o.ID); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := out.Claim(ctx, "x", now.Add(59*time.Minute), time.Minute, rows); err != nil || len(got) != 0 {
				t.Fatalf("claim before the retry is due = %d rows, %v; want none", len(got), err)
			}
			got, err = out.Claim(ctx, "x", now.Add(time.Hour), time.Minute, rows)
			if err != nil || len(got) != 1 || got[0].EventID != r.EventID || got[0].Attempts != 1 {
				t.Fatalf("claim once the retry is due = %+v, %v; want %s with 1 attempt", got, err, r.EventID)
			}
		})
	}
}

// Held rows: an INSERT retried is skipped; nobody claims a held row before its
// next_at; Cancel drops an account's held rows (not another's, nor one written
// out) and Release then finds it gone; Release makes a row due at once.
func TestOutboxHold(t *testing.T) {
	for _, engine := range []string{"sqlite", "mariadb"} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			out := openOutbox(t, engine)
			now := time.Now()
			held := []Held{
				{EventID: "bob1", Account: "bob", Payload: []byte(`{"count":1}`), NextAt: now.Add(time.Minute), Created: now},
				{EventID: "carol1", Account: "carol", Payload: []byte(`{"count":1}`), NextAt: now.Add(time.Minute), Created: now},
				{EventID: "dave1", Account: "dave", Payload: []byte(`{"count":1}`), NextAt: now.Add(time.Minute), Created: now},
			}
			for i := 0; i < 2; i++ {
				if err := out.Hold(ctx, held); err != nil {
					t.Fatalf("hold (run %d): %v", i+1, err)
				}
			}
			if got, err := out.Claim(ctx, "n", now, time.Minute, 10); err != nil || len(got) != 0 {
				t.Fatalf("claim while held = %+v, %v; want none", got, err)
			}
			if ok, err := out.Release(ctx, "dave1", []byte(`{"count":4}`), now); err != nil || !ok {
				t.Fatalf("release dave1 = %v, %v; want true", ok, err)
			}
			dropped, err := out.Cancel(ctx, []string{"bob", "dave", "erin"}, now)
			if err != nil || dropped != 1 {
				t.Fatalf("cancel = %d, %v; want bob's one held row (dave's is written out)", dropped, err)
			}
			if ok, err := out.Release(ctx, "bob1", []byte(`{"count":2}`), now); err != nil || ok {
				t.Fatalf("release of a cancelled row = %v, %v; want false", ok, err)
			}
			if ok, err := out.Release(ctx, "carol1", []byte(`{"count":2}`), time.Time{}); err != nil || !ok {
				t.Fatalf("rewrite of carol1 = %v, %v; want true", ok, err)
			}
			got, err := out.Claim(ctx, "n", now, time.Hour, 10)
			if err != nil || len(got) != 1 || got[0].EventID != "dave1" || string(got[0].Payload) != `{"count":4}` {
				t.Fatalf("claim = %+v, %v; want dave1 with its final payload", got, err)
			}
			got, err = out.Claim(ctx, "n", now.Add(time.Minute), time.Minute, 10)
			if err != nil || len(got) != 1 || got[0].EventID != "carol1" || string(got[0].Payload) != `{"count":2}` {
				t.Fatalf("claim past the hold = %+v, %v; want carol1, rewritten, left behind by its holder", got, err)
			}
		})
	}
}
