package handlers

import (
	"container/list"
	"sync"
	"time"
)

// ackMemory remembers, per sender, the cids it used recently and what became of
// them, so that a retried frame is acknowledged again and not delivered twice.
// It is bounded three ways: a cid is forgotten after cidMemory, a sender keeps
// its last cidsPerSender, and all senders together keep at most max (past it
// the oldest cids of the least recently active sender go first).
type ackMemory struct {
	mu      sync.Mutex
	senders map[string]*sentCIDs
	active  list.List // of *sentCIDs, most recently active first
	total   int       // cids remembered, all senders together
	max     int
	now     func() time.Time
}

type sentCIDs struct {
	from   string
	last   time.Time
	status map[string]string // cid -> pushed|stored
	order  []string          // oldest first, bounded by cidsPerSender
	elem   *list.Element     // in active
}

const (
	cidsPerSender = 512
	cidMemory     = 10 * time.Minute
)

// newAckMemory keeps at most max cids in all.
func newAckMemory(max int) *ackMemory {
	return &ackMemory{senders: make(map[string]*sentCIDs), max: max, now: time.Now}
}

func (m *ackMemory) seen(from, cid string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.senders[from]
	if s == nil || m.now().Sub(s.last) > cidMemory {
		return "", false
	}
	st, ok := s.status[cid]
	return st, ok
}

func (m *ackMemory) remember(from, cid, status string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for b := m.active.Back(); b != nil && now.Sub(b.Value.(*sentCIDs).last) > cidMemory; b = m.active.Back() {
		m.forget(b.Value.(*sentCIDs))
	}
	s := m.senders[from]
	if s == nil {
		s = &sentCIDs{from: from, status: make(map[string]string)}
		s.elem = m.active.PushFront(s)
		m.senders[from] = s
	} else {
		m.active.MoveToFront(s.elem)
	}
	s.last = now
	if _, ok := s.status[cid]; !ok {
		s.order = append(s.order, cid)
		m.total++
		if len(s.order) > cidsPerSender {
			m.dropOldest(s)
		}
	}
	s.status[cid] = status
	for m.total > m.max {
		m.dropOldest(m.active.Back().Value.(*sentCIDs))
	}
}

// dropOldest forgets s's oldest cid, and s once it has none. Caller holds mu.
func (m *ackMemory) dropOldest(s *sentCIDs) {
	delete(s.status, s.order[0])
	s.order[0] = ""
	s.order = s.order[1:]
	m.total--
	if len(s.order) == 0 {
		m.forget(s)
	}
}

// forget drops a sender and its cids. Caller holds mu.
func (m *ackMemory) forget(s *sentCIDs) {
	m.active.Remove(s.elem)
	delete(m.senders, s.from)
	m.total -= len(s.order)
}

// len is the number of cids remembered.
func (m *ackMemory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}
