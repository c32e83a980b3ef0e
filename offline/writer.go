package offline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// ErrBusy is returned by Enqueue when the queue is full, or the sender already
// has its share of it waiting: the database is not keeping up (or is down) and
// the sender must be told instead of the message being dropped silently.
var ErrBusy = errors.New("offline: write queue full")

// ErrClosed is returned by Enqueue after Close.
var ErrClosed = errors.New("offline: writer closed")

// inserter is what the writer needs from the store.
type inserter interface {
	Insert(ctx context.Context, msgs []Message) error
}

// WriterConfig sizes the writer. Zero fields take the defaults.
type WriterConfig struct {
	BatchSize  int // rows per INSERT; default DefaultBatchSize
	QueueLimit int // messages waiting before Enqueue says ErrBusy; default DefaultQueueLimit
	// SpoolLimit bounds the rows held in the spool (with a spool); past it
	// Enqueue says ErrBusy. Default DefaultSpoolLimit.
	SpoolLimit int
	// SenderShare bounds the messages of one sender (Message.From) waiting in
	// the queue, so that one sender cannot fill it for everybody. Default
	// QueueLimit/8.
	SenderShare int
}

// The defaults of WriterConfig's zero fields (config.Default uses them too).
const (
	DefaultBatchSize  = 500
	DefaultQueueLimit = 100_000
	DefaultSpoolLimit = 1_000_000
)

func (c WriterConfig) withDefaults() WriterConfig {
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.SpoolLimit <= 0 {
		c.SpoolLimit = DefaultSpoolLimit
	}
	if c.SenderShare <= 0 {
		c.SenderShare = max(c.QueueLimit/8, 1)
	}
	return c
}

// Writer batches offline messages into multi-row INSERTs from one goroutine, so
// that rows get ids in the order they were enqueued. There is no linger: a batch is
// whatever queued up while the previous INSERT ran, so a quiet server writes at
// once and a busy one writes many rows per statement.
type Writer struct {
	store inserter
	log   zerolog.Logger
	cfg   WriterConfig

	mu       sync.Mutex
	queue    []Message
	enqueued uint64        // messages ever enqueued
	written  uint64        // messages ever written (or given up on)
	progress chan struct{} // closed and replaced whenever written grows
	closed   bool

	// Admission, guarded by mu: messages waiting per sender, and room set
	// aside by Reserve (per message id, per sender and in all). Reserved room
	// counts as taken until it is used or released.
	bySender     map[string]int
	reserved     map[string]*reservation
	reservedFrom map[string]int
	reservedAll  int

	wake chan struct{}
	done chan struct{}

	observer observer
	notices  notices // guarded by mu: senders waiting for a commit (notify.go)

	spool   spooler   // nil: retry the database in place
	spooled int       // guarded by mu: rows in the spool
	retryAt time.Time // owned by run: next attempt to move the spool
}

// WriterOption gives NewWriter one of its optional collaborators.
type WriterOption func(*Writer)

// WithSpool makes the writer commit batches to spool while the database cannot
// be written, and move them back in order once it can. held is the number of
// rows already in the spool (a previous run's), moved out first.
func WithSpool(spool spooler, held int) WriterOption {
	return func(w *Writer) { w.spool, w.spooled = spool, held }
}

// WithObserver reports written rows and INSERT latency to o.
func WithObserver(o observer) WriterOption {
	return func(w *Writer) { w.observer = o }
}

// Spooled is the number of rows waiting in the spool for the database.
func (w *Writer) Spooled() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.spooled
}

func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// observer counts what the writer does (metrics.Metrics); may be nil.
type observer interface {
	OfflineWritten(n int)
	SQL(op string, d time.Duration)
}

// NewWriter starts the writer goroutine; stop it with Close. With a spool
// holding rows (WithSpool), moving them to the database starts at once.
func NewWriter(store inserter, cfg WriterConfig, log zerolog.Logger, opts ...WriterOption) *Writer {
	w := &Writer{
		store:    store,
		log:      log,
		cfg:      cfg.withDefaults(),
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),

		bySender:     make(map[string]int),
		reserved:     make(map[string]*reservation),
		reservedFrom: make(map[string]int),
	}
	for _, o := range opts {
		o(w)
	}
	if w.spool != nil {
		w.signal()
	}
	go w.run()
	return w
}

// Enqueue queues m for writing and returns its ticket for WaitWritten. It
// never blocks. It says ErrBusy when the queue (or the spool) is full, or when
// m.From already has its share of the queue waiting, unless room was reserved
// for m (Reserve with m's id).
func (w *Writer) Enqueue(m Message) (uint64, error) {
	return w.enqueue(m, false)
}

// EnqueueAccepted is Enqueue for a message accepted earlier (pushed to a
// connection that closed before acknowledging it, or taken from another
// node): it is never refused for a full queue, since the sender was already
// told it went through. It counts against the queue and the sender's share
// like any other.
func (w *Writer) EnqueueAccepted(m Message) (uint64, error) {
	return w.enqueue(m, true)
}

func (w *Writer) enqueue(m Message, accepted bool) (uint64, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, ErrClosed
	}
	if r := w.reservedFor(m); r != nil {
		r.left--
		w.unreserveLocked(r.from, 1)
	} else if !accepted {
		if err := w.admitLocked(m.From, 1); err != nil {
			w.mu.Unlock()
			return 0, err
		}
	}
	w.queue = append(w.queue, m)
	w.bySender[m.From]++
	w.enqueued++
	ticket := w.enqueued
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return ticket, nil
}

// reservedFor is m's reservation with room left, if any. Caller holds mu.
func (w *Writer) reservedFor(m Message) *reservation {
	if len(w.reserved) == 0 {
		return nil
	}
	if r := w.reserved[m.ID]; r != nil && r.from == m.From && r.left > 0 {
		return r
	}
	return nil
}

// reservation is room set aside for the rows of one message.
type reservation struct {
	from string
	left int
}

// Reserve sets aside room for n rows of the message with id from sender from
// (a group message's offline fan-out), all or nothing: ErrBusy if the queue
// (or the spool) has no room for n more, or if the sender already has
// messages waiting and n more would pass its share. A sender with nothing
// waiting may always reserve up to the queue's room, so that a group larger
// than the share can still be sent. Enqueue of a message with that id and
// sender uses the room; Release gives back what is left.
func (w *Writer) Reserve(from, id string, n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if n <= 0 {
		return nil
	}
	if err := w.admitLocked(from, n); err != nil {
		return err
	}
	r := w.reserved[id]
	if r == nil { // ids are one sender's (derived from it, or generated)
		r = &reservation{from: from}
		w.reserved[id] = r
	}
	r.left += n
	w.reservedFrom[r.from] += n
	w.reservedAll += n
	return nil
}

// Release gives back the room Reserve set aside for id and not used.
func (w *Writer) Release(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.reserved[id]; r != nil {
		w.unreserveLocked(r.from, r.left)
		delete(w.reserved, id)
	}
}

// admitLocked says whether n more rows from sender from fit. Caller holds mu.
func (w *Writer) admitLocked(from string, n int) error {
	taken := len(w.queue) + w.reservedAll
	if taken+n > w.cfg.QueueLimit || (w.spool != nil && w.spooled+taken+n > w.cfg.SpoolLimit) {
		return ErrBusy
	}
	if mine := w.bySender[from] + w.reservedFrom[from]; mine > 0 && mine+n > w.cfg.SenderShare {
		return ErrBusy
	}
	return nil
}

// unreserveLocked returns n reserved rows of sender from. Caller holds mu.
func (w *Writer) unreserveLocked(from string, n int) {
	w.reservedAll -= n
	if w.reservedFrom[from] -= n; w.reservedFrom[from] <= 0 {
		delete(w.reservedFrom, from)
	}
}

// Flush waits until every message enqueued before the call is in the database.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.enqueued
	w.mu.Unlock()
	return w.WaitWritten(ctx, target)
}

// WaitWritten waits until the message with the given ticket (and every one
// before it) is committed to the database.
func (w *Writer) WaitWritten(ctx context.Context, target uint64) error {
	w.mu.Lock()
	for w.written < target {
		ch := w.progress
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("offline: flush: %w", ctx.Err())
		}
		w.mu.Lock()
	}
	w.mu.Unlock()
	return nil
}

// Depth is the number of messages waiting to be written.
func (w *Writer) Depth() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int(w.enqueued - w.written)
}

// Close stops taking messages and writes what is queued, until ctx ends. It
// returns an error naming how many messages were not written.
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
		return fmt.Errorf("offline: close with %d messages unwritten: %w", w.Depth(), ctx.Err())
	}
}

func (w *Writer) run() {
	defer close(w.done)
	ctx := context.Background()
	for {
		w.mu.Lock()
		spooled := w.spooled
		w.mu.Unlock()
		if spooled > 0 && !time.Now().Before(w.retryAt) {
			w.unspool(ctx)
		}
		w.mu.Lock()
		n := min(len(w.queue), w.cfg.BatchSize)
		if n == 0 {
			closed := w.closed
			spooled = w.spooled
			w.mu.Unlock()
			if closed { // spooled rows stay on disk for the next start
				return
			}
			if spooled > 0 {
				select {
				case <-w.wake:
				case <-time.After(time.Until(w.retryAt) + time.Millisecond):
				}
			} else {
				<-w.wake
			}
			continue
		}
		batch := w.queue[:n:n]
		obs := w.observer
		w.mu.Unlock()

		start := time.Now()
		w.write(ctx, batch)
		if obs != nil {
			obs.SQL("insert", time.Since(start))
			obs.OfflineWritten(n)
		}

		w.mu.Lock()
		for _, m := range batch {
			if w.bySender[m.From]--; w.bySender[m.From] <= 0 {
				delete(w.bySender, m.From)
			}
		}
		w.queue = w.queue[n:]
		if len(w.queue) == 0 {
			w.queue = nil // let the backing array go
		}
		w.written += uint64(n)
		close(w.progress)
		w.progress = make(chan struct{})
		due := w.dueLocked()
		w.mu.Unlock()
		for _, d := range due {
			d.fire(true)
		}
	}
}

// write inserts batch, retrying faults with backoff until it is in. Rows the
// database refuses as data are split off, logged with their content's size and
// given up on, so that one bad row cannot block every other. A fault may come
// after the commit (the answer lost or late): the retry is safe because Insert
// skips rows already in the table.
func (w *Writer) write(ctx context.Context, batch []Message) {
	if w.spool != nil {
		w.writeOrSpool(ctx, batch)
		return
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := w.store.Insert(ctx, batch)
		if err == nil {
			if attempt > 1 {
				w.log.Info().Int("rows", len(batch)).Int("attempts", attempt).Msg("offline write recovered")
			}
			return
		}
		if permanent(err) && len(batch) > 1 {
			for i := range batch {
				w.write(ctx, batch[i:i+1])
			}
			return
		}
		if permanent(err) {
			m := batch[0]
			w.log.Error().Err(err).Str("to", m.To).Str("from", m.From).Int("content_bytes", len(m.Content)).
				Msg("offline row refused by the database; message dropped")
			return
		}
		w.log.Warn().Err(err).Int("rows", len(batch)).Int("attempt", attempt).Dur("retry_in", backoff).
			Msg("offline write failed; retrying")
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}

// writeOrSpool writes batch to the database, or, when that fails (or rows are
// already spooled: they go first), commits it to the spool. An INSERT that timed
// out may still commit; its rows are spooled all the same and skipped as
// repeats when the spool moves them.
func (w *Writer) writeOrSpool(ctx context.Context, batch []Message) {
	w.mu.Lock()
	spooled := w.spooled
	w.mu.Unlock()
	if spooled == 0 {
		dctx, cancel := context.WithTimeout(ctx, directTimeout)
		err := w.store.Insert(dctx, batch)
		cancel()
		switch {
		case err == nil:
			return
		case permanent(err) && len(batch) > 1:
			for i := range batch {
				w.writeOrSpool(ctx, batch[i:i+1])
			}
			return
		case permanent(err):
			m := batch[0]
			w.log.Error().Err(err).Str("to", m.To).Str("from", m.From).Int("content_bytes", len(m.Content)).
				Msg("offline row refused by the database; message dropped")
			return
		}
		w.log.Warn().Err(err).Int("rows", len(batch)).Msg("offline database unreachable; spooling to disk until it is back")
		w.retryAt = time.Now().Add(time.Second)
	}
	backoff := 50 * time.Millisecond
	for {
		err := w.spool.Insert(ctx, batch)
		if err == nil {
			w.mu.Lock()
			w.spooled += len(batch)
			w.mu.Unlock()
			return
		}
		w.log.Error().Err(err).Int("rows", len(batch)).Dur("retry_in", backoff).Msg("spool write failed; retrying")
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}

// unspool moves the oldest spooled rows to the database; on failure it waits
// before the next try.
func (w *Writer) unspool(ctx context.Context) {
	rows, err := w.spool.Oldest(ctx, w.cfg.BatchSize)
	moved := 0
	if err == nil && len(rows) > 0 {
		moved, err = w.moveOut(ctx, rows)
	}
	w.mu.Lock()
	w.spooled = max(w.spooled-moved, 0)
	if err == nil && len(rows) == 0 {
		w.spooled = 0 // the count was high (rows the spool already held were skipped)
	}
	left := w.spooled
	w.mu.Unlock()
	if err != nil {
		w.retryAt = time.Now().Add(time.Second)
		w.log.Warn().Err(err).Int("spooled", left).Msg("offline database still unreachable; messages wait in the spool")
		return
	}
	if left == 0 {
		w.log.Info().Msg("offline database reachable again: the spool is empty")
	}
}

// moveOut inserts rows (the spool's oldest, in order) into the database and
// deletes them from the spool, and returns how many left it. A crash or a fault
// between the insert and the delete leaves them in both; the next move inserts
// them again, and the database skips them as repeats. A batch the database
// refuses as data is moved row by row and the refused rows are dropped from the
// spool (logged), as write does, so that one bad row cannot hold the spool, and
// every newer message, forever.
func (w *Writer) moveOut(ctx context.Context, rows []Row) (int, error) {
	dctx, cancel := context.WithTimeout(ctx, directTimeout)
	err := w.store.Insert(dctx, rowsToMessages(rows))
	cancel()
	switch {
	case permanent(err) && len(rows) > 1:
		for i := range rows {
			if _, err := w.moveOut(ctx, rows[i:i+1]); err != nil {
				return i, err
			}
		}
		return len(rows), nil
	case permanent(err):
		r := rows[0]
		w.log.Error().Err(err).Str("to", r.To).Str("from", r.From).Int("content_bytes", len(r.Content)).
			Msg("spooled offline row refused by the database; message dropped")
	case err != nil:
		return 0, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	if err := w.spool.Delete(ctx, ids); err != nil {
		return 0, err
	}
	return len(rows), nil
}
