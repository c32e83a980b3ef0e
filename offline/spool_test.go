package offline_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/offline"
)

// flaky fails every insert while down is set, like an unreachable MySQL.
type flaky struct {
	*offline.Store
	down atomic.Bool
}

func (f *flaky) Insert(ctx context.Context, m []offline.Message) error {
	if f.down.Load() {
		return errors.New("dial tcp: connection refused")
	}
	return f.Store.Insert(ctx, m)
}

// TestSpoolKeepsOrderAcrossAnOutage: while the database is down, batches are
// committed to the spool (WaitWritten returns: the ack may go out); when it is
// back, they move to it before anything newer, and every row arrives once.
func TestSpoolKeepsOrderAcrossAnOutage(t *testing.T) {
	main := &flaky{Store: openSQLite(t)}
	MustMigrate(t, main.Store)
	spool := openSQLite(t)
	MustMigrate(t, spool)
	w := offline.NewWriter(main, offline.WriterConfig{BatchSize: 50}, zerolog.New(zerolog.NewTestWriter(t)), offline.WithSpool(spool, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	send := func(from, to int) {
		var last uint64
		for i := from; i < to; i++ {
			tk, err := w.Enqueue(offline.Message{To: "bob", From: "alice", Content: fmt.Sprint(i), ID: fmt.Sprint("id", i)})
			if err != nil {
				t.Fatal(err)
			}
			last = tk
		}
		if err := w.WaitWritten(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	send(0, 100)
	main.down.Store(true)
	send(100, 300) // durable in the spool
	if w.Spooled() == 0 {
		t.Fatal("nothing spooled while the database was down")
	}
	main.down.Store(false)
	send(300, 400)
	for w.Spooled() > 0 {
		if ctx.Err() != nil {
			t.Fatal("the spool never emptied")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rows, _, _, err := main.Pending(ctx, "bob", "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 400 {
		t.Fatalf("%d rows in the database; want 400", len(rows))
	}
	for i, r := range rows {
		if r.Content != fmt.Sprint(i) || r.MsgID != fmt.Sprint("id", i) {
			t.Fatalf("row %d = %q (%s); want %d in order with its id", i, r.Content, r.MsgID, i)
		}
	}
	_ = w.Close(ctx)
}
