package history

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// CursorMove moves Account's cursor in Conv to the message (Seq, ID), if
// that is past it.
type CursorMove struct {
	Account, Conv string
	Seq           int64
	ID            string
	Time          int64 // unix seconds
}

type cursorKey struct{ account, conv string }

// CursorWriter writes cursor moves in batches from one goroutine, like the
// history's Writer: moves queued while a batch is written go in the next
// one, and of the moves of one account in one conversation only the furthest
// is written (a client reading message after message costs a row per batch,
// not a statement per frame). The database keeps every cursor forward only
// whatever order batches of several nodes land in.
type CursorWriter struct {
	reads *Reads
	log   zerolog.Logger
	batch int
	limit int

	mu       sync.Mutex
	pending  map[cursorKey]CursorMove
	inflight map[cursorKey]CursorMove // the batch being written
	queued   uint64                   // moves ever queued
	mark     watermark                // moves written (or given up on), for Flush
	dropped  uint64
	closed   bool

	wake chan struct{}
	done chan struct{}
}

// NewCursorWriter starts the writer on r's database: batch rows per
// statement, at most limit cursors waiting (past it a move is dropped and
// logged: the reader's next read moves it). Stop it with Close.
func NewCursorWriter(r *Reads, batch, limit int, log zerolog.Logger) *CursorWriter {
	w := &CursorWriter{
		reads: r, log: log, batch: batch, limit: limit,
		pending: map[cursorKey]CursorMove{}, mark: newWatermark(),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go w.run()
	return w
}

// Queue queues m. It never blocks.
func (w *CursorWriter) Queue(m CursorMove) {
	k := cursorKey{m.Account, m.Conv}
	w.mu.Lock()
	cur, ok := w.pending[k]
	if w.closed || (!ok && len(w.pending) >= w.limit) {
		w.dropped++
		n := w.dropped
		w.mu.Unlock()
		if n&(n-1) == 0 {
			w.log.Error().Uint64("dropped", n).Str("account", m.Account).Msg("read cursor queue full: a read not kept")
		}
		return
	}
	if !ok || m.Seq > cur.Seq {
		w.pending[k] = m
	}
	w.queued++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Pending returns the furthest move of account in conv not written yet
// (waiting, or in the batch being written).
func (w *CursorWriter) Pending(account, conv string) (Cursor, bool) {
	k := cursorKey{account, conv}
	w.mu.Lock()
	defer w.mu.Unlock()
	m, ok := w.pending[k]
	if f, in := w.inflight[k]; in && (!ok || f.Seq > m.Seq) {
		m, ok = f, true
	}
	return Cursor{Seq: m.Seq, ID: m.ID}, ok
}

// Flush waits until every move queued before the call is written.
func (w *CursorWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.mark.wait(ctx, &w.mu, w.queued); err != nil {
		return fmt.Errorf("history: flush cursors: %w", err)
	}
	return nil
}

// Close stops taking moves and writes what waits, until ctx ends.
func (w *CursorWriter) Close(ctx context.Context) error {
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
		return fmt.Errorf("history: close with cursors unwritten: %w", ctx.Err())
	}
}

func (w *CursorWriter) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		if len(w.pending) == 0 {
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return
			}
			<-w.wake
			continue
		}
		taken, target := w.pending, w.queued
		w.pending, w.inflight = map[cursorKey]CursorMove{}, taken
		w.mu.Unlock()
		moves := make([]CursorMove, 0, len(taken))
		for _, m := range taken {
			moves = append(moves, m)
		}
		for len(moves) > 0 {
			n := min(len(moves), w.batch)
			w.write(moves[:n])
			moves = moves[n:]
		}
		w.mu.Lock()
		w.inflight = nil
		w.mark.advanceTo(target)
		w.mu.Unlock()
	}
}

// write writes batch, retrying faults with backoff (a repeat moves nothing
// further); once closing, a failing batch is given up after a few attempts.
func (w *CursorWriter) write(batch []CursorMove) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := w.reads.MoveAll(ctx, batch)
		cancel()
		if err == nil {
			return
		}
		w.mu.Lock()
		closed := w.closed
		w.mu.Unlock()
		if (closed && attempt >= 3) || permanent(err) {
			w.log.Error().Err(err).Int("cursors", len(batch)).Msg("read cursors not written")
			return
		}
		w.log.Warn().Err(err).Int("cursors", len(batch)).Int("attempt", attempt).Dur("retry_in", backoff).
			Msg("read cursors not written; retrying")
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}

// ReadState is the read cursors with the moves this node has not written yet.
type ReadState struct {
	*Reads
	W *CursorWriter
}

// FindFor is Reads.FindFor with the cursor moved by this node's waiting moves.
func (s ReadState) FindFor(ctx context.Context, reader, conv, id string) (int64, string, Cursor, error) {
	seq, from, cur, err := s.Reads.FindFor(ctx, reader, conv, id)
	if p, ok := s.W.Pending(reader, conv); ok && p.Seq > cur.Seq {
		cur = p
	}
	return seq, from, cur, err
}

// Queue queues a move for the writer.
func (s ReadState) Queue(m CursorMove) { s.W.Queue(m) }

// FlushCursors waits for the moves queued here so far.
func (s ReadState) FlushCursors(ctx context.Context) error { return s.W.Flush(ctx) }
