package handlers

import (
	"context"
	"sync"

	"chatserver/hub"
)

// Receiver acknowledgements, opt-in per connection with {"flag":"init",...,
// "ack":true}: the connection answers {"flag":"ack","id":...} for what it got
// (cumulative: an ack covers that message and every earlier one). Messages it
// has not acknowledged when it closes go back to the offline pool and come again
// at the next init, in order; offline rows pushed to it are marked sent when
// acknowledged, not when written. Connections without "ack" keep the legacy
// behaviour: written means delivered.

// receiverAck handles {"flag":"ack","id":...} from an acknowledging connection.
func (h *Handler) receiverAck(c *hub.Conn, f *Frame) error {
	if _, e := bound(c); e != nil {
		return e
	}
	if f.ID == "" {
		return newError(CodeMissingField, "id is required: the id of the last message received")
	}
	if !c.ReceiverAcks() {
		return nil // a legacy connection has nothing to acknowledge; ignore
	}
	var rows []int64
	for _, it := range c.ReceiverAck(f.ID) {
		if r, ok := it.(*drainedRow); ok {
			rows = append(rows, r.row)
		}
	}
	if len(rows) > 0 {
		h.marker.add(rows)
	}
	return nil
}

// marker marks acknowledged offline rows sent off the connection's handler
// flow: a receiver ack must not hold a goroutine of the shared pool while the database
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
		err := h.backlog.MarkSent(ctx, ids)
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
