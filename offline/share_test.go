package offline_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/offline"
)

// stalled is a database that does not answer until open is closed; then it
// keeps what it is given.
type stalled struct {
	open chan struct{}
	mu   sync.Mutex
	rows []offline.Message
}

func newStalled() *stalled { return &stalled{open: make(chan struct{})} }

func (s *stalled) Insert(ctx context.Context, m []offline.Message) error {
	select {
	case <-s.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	s.rows = append(s.rows, m...)
	s.mu.Unlock()
	return nil
}

func (s *stalled) from(sender string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.rows {
		if m.From == sender {
			n++
		}
	}
	return n
}

func newStalledWriter(t *testing.T, cfg offline.WriterConfig) (*offline.Writer, *stalled) {
	t.Helper()
	db := newStalled()
	w := offline.NewWriter(db, cfg, zerolog.New(zerolog.NewTestWriter(t)))
	t.Cleanup(func() {
		select {
		case <-db.open:
		default:
			close(db.open)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Close(ctx)
	})
	return w, db
}

func msg(from, id string) offline.Message {
	return offline.Message{To: "someone", From: from, Content: "x", ID: id}
}

// With the database stalled, one sender fills only its share of the queue:
// past it that sender is busy, another sender still gets in, and once the rows
// are written the first sender may send again.
func TestSenderShareKeepsRoomForOthers(t *testing.T) {
	w, db := newStalledWriter(t, offline.WriterConfig{BatchSize: 1, QueueLimit: 100, SenderShare: 10})
	accepted := 0
	for i := 0; i < 100; i++ {
		_, err := w.Enqueue(msg("flood", "f"+strconv.Itoa(i)))
		if errors.Is(err, offline.ErrBusy) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
	}
	if accepted != 10 {
		t.Fatalf("one sender got %d messages into a stalled queue of 100; want its share, 10", accepted)
	}
	for _, from := range []string{"quiet1", "quiet2"} {
		if _, err := w.Enqueue(msg(from, from)); err != nil {
			t.Fatalf("%s's message with flood at its share = %v; want accepted", from, err)
		}
	}
	close(db.open)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := db.from("flood"); n != 10 {
		t.Fatalf("%d of flood's rows written; want 10", n)
	}
	if _, err := w.Enqueue(msg("flood", "after")); err != nil {
		t.Fatalf("flood after its rows were written = %v; want accepted", err)
	}
}

// A reservation is all or nothing: refused whole when it would pass the
// sender's share or the queue's room, and then nothing is taken; granted, it
// lets every row of that message in, holds its room against others until
// released, and a sender with nothing waiting may reserve more than its share.
func TestReserveIsAllOrNothing(t *testing.T) {
	w, db := newStalledWriter(t, offline.WriterConfig{BatchSize: 1, QueueLimit: 100, SenderShare: 10})
	if err := w.Reserve("big", "g1", 30); err != nil {
		t.Fatalf("reserving 30 with nothing waiting = %v; want granted (one message may exceed the share)", err)
	}
	for i := 0; i < 30; i++ {
		if _, err := w.Enqueue(msg("big", "g1")); err != nil {
			t.Fatalf("row %d of the reserved message = %v", i, err)
		}
	}
	if _, err := w.Enqueue(msg("big", "g1")); !errors.Is(err, offline.ErrBusy) {
		t.Fatalf("a 31st row past the reservation and the share = %v; want ErrBusy", err)
	}
	w.Release("g1")
	if err := w.Reserve("big", "g2", 1); !errors.Is(err, offline.ErrBusy) {
		t.Fatalf("a second message from a sender past its share = %v; want ErrBusy", err)
	}

	if err := w.Reserve("other", "h1", 71); !errors.Is(err, offline.ErrBusy) {
		t.Fatalf("reserving 71 with 30 of 100 taken = %v; want ErrBusy", err)
	}
	if err := w.Reserve("other", "h1", 70); err != nil {
		t.Fatalf("reserving the 70 left = %v; want granted", err)
	}
	if _, err := w.Enqueue(msg("third", "t")); !errors.Is(err, offline.ErrBusy) {
		t.Fatalf("enqueue while reservations hold the rest = %v; want ErrBusy", err)
	}
	if _, err := w.Enqueue(msg("other", "h1")); err != nil {
		t.Fatal(err)
	}
	w.Release("h1") // 69 unused rows given back
	if _, err := w.Enqueue(msg("third", "t")); err != nil {
		t.Fatalf("enqueue after the release = %v; want accepted", err)
	}
	close(db.open)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b, c := db.from("big"), db.from("other"), db.from("third"); a != 30 || b != 1 || c != 1 {
		t.Fatalf("rows written: big %d, other %d, third %d; want 30, 1, 1", a, b, c)
	}
}

// A message accepted earlier (requeued after a connection closed without
// acknowledging it) is queued past a full queue and written; after Close it is
// refused like any other.
func TestEnqueueAcceptedPastAFullQueue(t *testing.T) {
	w, db := newStalledWriter(t, offline.WriterConfig{BatchSize: 1, QueueLimit: 10, SenderShare: 10})
	for i := 0; i < 10; i++ {
		if _, err := w.Enqueue(msg("a", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Enqueue(msg("b", "new")); !errors.Is(err, offline.ErrBusy) {
		t.Fatalf("a new message into a full queue = %v; want ErrBusy", err)
	}
	tk, err := w.EnqueueAccepted(msg("b", "requeued"))
	if err != nil {
		t.Fatalf("an accepted message into a full queue = %v; want queued", err)
	}
	close(db.open)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WaitWritten(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if n := db.from("b"); n != 1 {
		t.Fatalf("%d rows of b written; want the requeued one", n)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.EnqueueAccepted(msg("b", "late")); !errors.Is(err, offline.ErrClosed) {
		t.Fatalf("EnqueueAccepted after Close = %v; want ErrClosed", err)
	}
}
