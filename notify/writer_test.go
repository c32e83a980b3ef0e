package notify

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"chatserver/offline"
)

func countRows(t *testing.T, out *Outbox) int {
	t.Helper()
	var n int
	if err := out.db.QueryRow("SELECT COUNT(*) FROM `" + out.table + "`").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A held row whose INSERT fails stays queued, ahead of what came after it
// (an init's cancel), and is written once the table answers again; the
// cancel then drops it and counts it.
func TestWriterKeepsOrderAcrossFailures(t *testing.T) {
	ctx := context.Background()
	out := openOutbox(t, "sqlite")
	reg := prometheus.NewRegistry()
	n, err := New(Config{URL: "http://127.0.0.1:1/", Secret: "s", Grace: time.Hour}, Deps{
		Outbox: out, Online: func(context.Context, string) (bool, error) { return false, nil },
		Registry: reg, Log: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Stored(offline.Message{To: "bob", From: "alice", Content: "hi"})
	n.Stored(offline.Message{To: "carol", From: "alice", Content: "hi"})
	if _, err := out.db.Exec("ALTER TABLE app_notify_outbox RENAME TO moved_away"); err != nil {
		t.Fatal(err)
	}
	if failed := n.writeQueued(ctx); !failed {
		t.Fatal("write to a missing table reported no failure")
	}
	n.Online("bob")
	n.mu.Lock()
	kinds := []opKind{}
	for _, o := range n.ops {
		kinds = append(kinds, o.kind)
	}
	n.mu.Unlock()
	if len(kinds) != 3 || kinds[0] != opHold || kinds[1] != opHold || kinds[2] != opCancel {
		t.Fatalf("queued after the failure: %v; want both holds first, then the cancel", kinds)
	}
	if _, err := out.db.Exec("ALTER TABLE moved_away RENAME TO app_notify_outbox"); err != nil {
		t.Fatal(err)
	}
	if failed := n.writeQueued(ctx); failed {
		t.Fatal("write failed with the table back")
	}
	if got := countRows(t, out); got != 1 {
		t.Fatalf("rows = %d; want carol's (bob's cancelled by his init)", got)
	}
	if got := counter(t, reg, "chat_notify_cancelled_total"); got != 1 {
		t.Fatalf("chat_notify_cancelled_total = %v; want 1", got)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
