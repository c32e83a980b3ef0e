package history

import (
	"context"
	"sync"
)

// watermark counts what a writer has written, for Flush: callers wait until
// the count reaches what was queued before them. Its owner's mutex guards it.
type watermark struct {
	written  uint64        // items ever written (or given up on)
	progress chan struct{} // closed, and replaced, at each advance
}

func newWatermark() watermark { return watermark{progress: make(chan struct{})} }

// advanceTo records that everything up to n is written and wakes the waiters;
// mu is held.
func (m *watermark) advanceTo(n uint64) {
	m.written = n
	close(m.progress)
	m.progress = make(chan struct{})
}

// wait returns once target is written, or ctx ends; mu (guarding m) is held
// on entry and on return.
func (m *watermark) wait(ctx context.Context, mu *sync.Mutex, target uint64) error {
	for m.written < target {
		ch := m.progress
		mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			mu.Lock()
			return ctx.Err()
		}
		mu.Lock()
	}
	return nil
}
