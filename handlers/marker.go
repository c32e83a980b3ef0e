package handlers

import (
	"context"
	"sync"
)

// marker marks acknowledged offline rows sent off the connection's handler
// flow: an ack must not hold a goroutine of the shared pool while the database
// is slow or hangs. One goroutine at most, started when there is work and gone
// when there is none, marks what piled up in one statement, each under
// offline.query_timeout. Rows it cannot mark stay unsent and come again at the
// next init, with the same ids (acknowledging clients drop them).
type marker struct {
	h       *Handler
	mu      sync.Mutex
	ids     []int64
	running bool
}

func (m *marker) add(ids []int64) {
	m.mu.Lock()
	m.ids = append(m.ids, ids...)
	start := !m.running
	m.running = true
	m.mu.Unlock()
	if start {
		go m.run()
	}
}

func (m *marker) run() {
	for {
		m.mu.Lock()
		ids := m.ids
		m.ids = nil
		if len(ids) == 0 {
			m.running = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		h := m.h
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
		err := h.store.MarkSent(ctx, ids)
		cancel()
		if err != nil {
			h.log.Error().Err(err).Int("rows", len(ids)).
				Msg("acknowledged offline rows could not be marked sent; they come again at the next init")
			continue
		}
		h.metrics.OfflineDrained(len(ids))
	}
}

// idle reports whether nothing waits to be marked (tests).
func (m *marker) idle() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.running
}
