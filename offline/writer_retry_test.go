package offline_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/offline"
)

// lateAnswer commits the first `late` inserts and then reports a timeout, as
// MySQL does when it answers after the writer's deadline: the writer cannot
// tell these rows from rows that never arrived.
type lateAnswer struct {
	*offline.Store
	late atomic.Int32
}

func (l *lateAnswer) Insert(ctx context.Context, m []offline.Message) error {
	if l.late.Add(-1) >= 0 {
		if err := l.Store.Insert(context.Background(), m); err != nil {
			return err
		}
		return fmt.Errorf("offline: insert %d rows: %w", len(m), context.DeadlineExceeded)
	}
	return l.Store.Insert(ctx, m)
}

func enqueueN(t *testing.T, w *offline.Writer, from, to int) uint64 {
	t.Helper()
	var last uint64
	for i := from; i < to; i++ {
		tk, err := w.Enqueue(offline.Message{To: "bob", From: "alice", Content: fmt.Sprint(i), ID: fmt.Sprint("id", i)})
		if err != nil {
			t.Fatal(err)
		}
		last = tk
	}
	return last
}

// mustHoldInOrder checks that bob has exactly n rows, 0..n-1 in id order, each
// with its own msg_id.
func mustHoldInOrder(t *testing.T, s *offline.Store, n int) {
	t.Helper()
	rows, _, _, err := s.Pending(context.Background(), "bob", "", 0, 10*n)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(rows))
	for i, r := range rows {
		got[i] = r.MsgID
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprint("id", i)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%d rows for bob: %v\nwant %d in order: %v", len(got), got, n, want)
	}
}

func waitSpoolEmpty(t *testing.T, w *offline.Writer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for w.Spooled() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the spool still holds %d rows after 30 s", w.Spooled())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWriterRetriesDoNotRepeat: inserts that commit but answer late are
// retried (without a spool) or spooled and moved later (with one); either way
// every message is in the table once, in send order.
func TestWriterRetriesDoNotRepeat(t *testing.T) {
	for _, e := range engines {
		for _, withSpool := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/spool=%v", e.name, withSpool), func(t *testing.T) {
				main := &lateAnswer{Store: e.open(t)}
				MustMigrate(t, main.Store)
				main.late.Store(3)
				var opts []offline.WriterOption
				if withSpool {
					spool := openSQLite(t)
					MustMigrate(t, spool)
					opts = append(opts, offline.WithSpool(spool, 0))
				}
				w := offline.NewWriter(main, offline.WriterConfig{BatchSize: 7}, zerolog.New(zerolog.NewTestWriter(t)), opts...)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				defer func() { _ = w.Close(ctx) }()
				if err := w.WaitWritten(ctx, enqueueN(t, w, 0, 30)); err != nil {
					t.Fatal(err)
				}
				waitSpoolEmpty(t, w)
				if main.late.Load() >= 0 {
					t.Fatalf("only %d late answers were given; the test did not exercise a retry", 3-main.late.Load())
				}
				mustHoldInOrder(t, main.Store, 30)
			})
		}
	}
}

// TestSpoolMoveSurvivesACrash: a previous run crashed after the spool's rows
// were inserted into the database and before they were deleted from the spool.
// The next run moves them again; the database keeps each once.
func TestSpoolMoveSurvivesACrash(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			main := e.open(t)
			MustMigrate(t, main)
			spool := openSQLite(t)
			MustMigrate(t, spool)
			var msgs []offline.Message
			for i := 0; i < 20; i++ {
				msgs = append(msgs, offline.Message{To: "bob", From: "alice", Content: fmt.Sprint(i), ID: fmt.Sprint("id", i)})
			}
			mustInsert(t, spool, msgs)
			mustInsert(t, main, msgs[:12]) // moved, not yet deleted: then the crash

			w := offline.NewWriter(main, offline.WriterConfig{BatchSize: 8}, zerolog.New(zerolog.NewTestWriter(t)), offline.WithSpool(spool, 20))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			defer func() { _ = w.Close(ctx) }()
			waitSpoolEmpty(t, w)
			if err := w.WaitWritten(ctx, enqueueN(t, w, 20, 25)); err != nil {
				t.Fatal(err)
			}
			mustHoldInOrder(t, main, 25)
			if n, err := spool.Count(ctx); err != nil || n != 0 {
				t.Fatalf("spool holds %d rows (%v); want 0", n, err)
			}
		})
	}
}

// TestSpoolDropsARowTheDatabaseRefuses: a spooled row MySQL refuses as data (an
// account longer than its column) is dropped with a log line instead of
// holding every newer message in the spool forever; the rows around it move in
// order.
func TestSpoolDropsARowTheDatabaseRefuses(t *testing.T) {
	main := openMySQL(t)
	MustMigrate(t, main)
	spool := openSQLite(t)
	MustMigrate(t, spool)
	var msgs []offline.Message
	for i := 0; i < 10; i++ {
		if i == 5 {
			msgs = append(msgs, offline.Message{To: strings.Repeat("b", 65), From: "alice", Content: "too long", ID: "bad"})
		}
		msgs = append(msgs, offline.Message{To: "bob", From: "alice", Content: fmt.Sprint(i), ID: fmt.Sprint("id", i)})
	}
	mustInsert(t, spool, msgs)
	w := offline.NewWriter(main, offline.WriterConfig{BatchSize: 50}, zerolog.New(zerolog.NewTestWriter(t)), offline.WithSpool(spool, len(msgs)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer func() { _ = w.Close(ctx) }()
	waitSpoolEmpty(t, w)
	if err := w.WaitWritten(ctx, enqueueN(t, w, 10, 12)); err != nil {
		t.Fatal(err)
	}
	mustHoldInOrder(t, main, 12)
	if n, err := spool.Count(ctx); err != nil || n != 0 {
		t.Fatalf("spool holds %d rows (%v); want 0", n, err)
	}
}
