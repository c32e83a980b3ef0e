package handlers

import (
	"container/list"
	"sync"
	"time"
)

// sentCIDs remembers, per sender, the cids it used recently and what became of
// them, so that a retried frame is acknowledged again and not delivered twice.
// It is bounded three ways: a cid is forgotten after cidMemory, a sender keeps
// its last cidsPerSender, and all senders together keep at most max (past it
// the oldest cids of the least recently active sender go first).
type sentCIDs struct {
	mu      sync.Mutex
	senders map[string]*senderCIDs
	active  list.List // of *senderCIDs, most recently active first
	total   int       // cids remembered, all senders together
	max     int
	now     func() time.Time
}

type senderCIDs struct {
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

// newSentCIDs keeps at most max cids in all.
func newSentCIDs(max int) *sentCIDs {
	return &sentCIDs{senders: make(map[string]*senderCIDs), max: max, now: time.Now}
}

func (m *sentCIDs) seen(from, cid string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.senders[from]
	if s == nil || m.now().Sub(s.last) > cidMemory {
		return "", false
	}
	st, ok := s.status[cid]
	return st, ok
}

func (m *sentCIDs) remember(from, cid, status string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for b := m.active.Back(); b != nil && now.Sub(b.Value.(*senderCIDs).last) > cidMemory; b = m.active.Back() {
		m.forget(b.Value.(*senderCIDs))
	}
	s := m.senders[from]
	if s == nil {
		s = &senderCIDs{from: from, status: make(map[string]string)}
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
		m.dropOldest(m.active.Back().Value.(*senderCIDs))
	}
}

// dropOldest forgets s's oldest cid, and s once it has none. Caller holds mu.
func (m *sentCIDs) dropOldest(s *senderCIDs) {
	delete(s.status, s.order[0])
	s.order[0] = ""
	s.order = s.order[1:]
	m.total--
	if len(s.order) == 0 {
		m.forget(s)
	}
}

// forget drops a sender and its cids. Caller holds mu.
func (m *sentCIDs) forget(s *senderCIDs) {
	m.active.Remove(s.elem)
	delete(m.senders, s.from)
	m.total -= len(s.order)
}

// len is the number of cids remembered.
func (m *sentCIDs) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}
