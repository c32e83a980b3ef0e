package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"
)

// inserter is what the writer needs from the store.
type inserter interface {
	Insert(ctx context.Context, entries []Entry) error
}

// Writer batches entries into multi-row INSERTs from one goroutine, like the
// offline pool's writer: a batch is whatever queued while the previous INSERT
// ran, so rows of one node get ids in the order they were recorded. History is
// a record, not a delivery: when the queue is full (the database is down for
// long) an entry is dropped and logged rather than refusing the message.
type Writer struct {
	store     inserter
	log       zerolog.Logger
	batchSize int
	limit     int
	// touchedMax bounds touched; 0: conversations are not tracked.
	touchedMax int

	mu       sync.Mutex
	queue    []Entry
	recorded uint64    // entries ever queued
	mark     watermark // entries written (or given up on), for Flush
	dropped  uint64
	closed   bool
	// touched holds the conversations written since the last Touched, for the
	// per-conversation retention. Guarded by mu.
	touched map[string]struct{}

	wake chan struct{}
	done chan struct{}
}

// WriterConfig sizes the writer.
type WriterConfig struct {
	BatchSize  int // rows per INSERT; must be positive
	QueueLimit int // entries waiting, past which Record drops; must be positive
	// TrackConversations remembers up to this many conversations written
	// since the last Touched (for history.max_per_conversation); 0: none.
	TrackConversations int
}

// NewWriter starts the writer; stop it with Close.
func NewWriter(store inserter, cfg WriterConfig, log zerolog.Logger) *Writer {
	w := &Writer{
		store: store, log: log, batchSize: cfg.BatchSize, limit: cfg.QueueLimit, touchedMax: cfg.TrackConversations,
		mark: newWatermark(), wake: make(chan struct{}, 1), done: make(chan struct{}),
		touched: make(map[string]struct{}),
	}
	go w.run()
	return w
}

// Record queues e for writing. It never blocks.
func (w *Writer) Record(e Entry) {
	w.mu.Lock()
	if w.closed || len(w.queue) >= w.limit {
		w.dropped++
		n := w.dropped
		w.mu.Unlock()
		if n&(n-1) == 0 { // 1, 2, 4, 8...: a long outage does not flood the log
			w.log.Error().Uint64("dropped", n).Str("id", e.ID).Msg("history queue full: message not kept in history")
		}
		return
	}
	w.queue = append(w.queue, e)
	w.recorded++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every entry recorded before the call is written.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.mark.wait(ctx, &w.mu, w.recorded); err != nil {
		return fmt.Errorf("history: flush: %w", err)
	}
	return nil
}

// Touched returns the conversations written since the last call (at most
// WriterConfig.TrackConversations of them) and starts a new set.
func (w *Writer) Touched() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.touched))
	for c := range w.touched {
		out = append(out, c)
	}
	if len(out) > 0 {
		w.touched = make(map[string]struct{})
	}
	return out
}

// Close stops taking entries and writes what is queued, until ctx ends.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.mu.Lock()
		left := len(w.queue)
		w.mu.Unlock()
		return fmt.Errorf("history: close with %d entries unwritten: %w", left, ctx.Err())
	}
}

func (w *Writer) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		n := min(len(w.queue), w.batchSize)
		if n == 0 {
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return
			}
			<-w.wake
			continue
		}
		batch := w.queue[:n:n]
		w.mu.Unlock()
		w.write(batch)
		w.mu.Lock()
		for _, e := range batch {
			if len(w.touched) >= w.touchedMax {
				break // the rest are tracked when next written
			}
			w.touched[e.Conv()] = struct{}{}
		}
		w.queue = w.queue[n:]
		if len(w.queue) == 0 {
			w.queue = nil
		}
		w.mark.advanceTo(w.mark.written + uint64(n))
		w.mu.Unlock()
	}
}

// permanent reports whether the database refused the rows as data (a value
// too long, a bad character), which no retry can change.
func permanent(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1048, 1264, 1292, 1366, 1406: // null, range, value, charset, too long
			return true
		}
	}
	return false
}

// write inserts batch, retrying faults with backoff (a repeat is skipped by
// the table's unique key). Once closing, a failing batch is given up after a
// few attempts so that shutdown is not held by a database that is gone.
func (w *Writer) write(batch []Entry) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := w.store.Insert(ctx, batch)
		cancel()
		if err == nil {
			return
		}
		if permanent(err) && len(batch) > 1 { // find the row the database refuses
			for i := range batch {
				w.write(batch[i : i+1])
			}
			return
		}
		if permanent(err) {
			e := batch[0]
			w.log.Error().Err(err).Str("id", e.ID).Str("from", e.From).Int("content_bytes", len(e.Content)).
				Msg("history row refused by the database; not kept in history")
			return
		}
		w.mu.Lock()
		closed := w.closed
		w.mu.Unlock()
		if closed && attempt >= 3 {
			w.log.Error().Err(err).Int("rows", len(batch)).Msg("history rows not written at shutdown")
			return
		}
		w.log.Warn().Err(err).Int("rows", len(batch)).Int("attempt", attempt).Dur("retry_in", backoff).
			Msg("history write failed; retrying")
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}
