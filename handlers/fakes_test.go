package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/groups"
	"chatserver/hub"
	"chatserver/offline"
	"chatserver/presence"
)

// memStore is an in-memory offline pool for unit tests of the handlers' logic:
// the queue and the backlog at once (a message enqueued is pending at once).
// The real engines are tested in offline/ and end to end in the main package.
type memStore struct {
	mu      sync.Mutex
	rows    []offline.Row
	status  map[int64]int
	nextID  int64
	enqErr  error
	pendErr error
	// onPending runs (unlocked) before each Pending read: a test injects
	// messages that race with the drain.
	onPending func()
}

func newMemStore() *memStore { return &memStore{status: map[int64]int{}} }

func (m *memStore) Enqueue(msg offline.Message) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.enqErr != nil {
		return 0, m.enqErr
	}
	return m.addLocked(msg), nil
}

// EnqueueAccepted passes a full queue (enqErr), as the writer's does.
func (m *memStore) EnqueueAccepted(msg offline.Message) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addLocked(msg), nil
}

func (m *memStore) addLocked(msg offline.Message) uint64 {
	m.nextID++
	m.rows = append(m.rows, offline.Row{ID: m.nextID, To: msg.To, From: msg.From, Content: msg.Content, Group: msg.Group, MsgID: msg.ID})
	return uint64(m.nextID)
}
func (m *memStore) Reserve(string, string, int) error                      { return nil }
func (m *memStore) Release(string)                                         {}
func (m *memStore) NotifyWritten(_ uint64, _ time.Duration, fn func(bool)) { fn(true) }
func (m *memStore) Flush(context.Context) error                            { return nil }
func (m *memStore) SpoolHolds(context.Context, string) (bool, error)       { return false, nil }
func (m *memStore) HasPending(context.Context, string) (bool, error) {
	return true, nil // the fake always reads; the real probe is tested in offline/
}
func (m *memStore) Pending(_ context.Context, account, from string, after int64, limit int) ([]offline.Row, int64, bool, error) {
	if m.onPending != nil {
		m.onPending()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pendErr != nil {
		return nil, after, false, m.pendErr
	}
	var out []offline.Row
	next := after
	for _, r := range m.rows {
		if r.ID > after && r.To == account && m.status[r.ID] == 0 && (from == "" || r.From == from) {
			out = append(out, r)
			next = r.ID
			if len(out) == limit {
				return out, next, true, nil
			}
		}
	}
	return out, next, false, nil
}
func (m *memStore) MarkSent(_ context.Context, ids []int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		m.status[id] = 1
	}
	return nil
}
func (m *memStore) unsent() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.rows {
		if m.status[r.ID] == 0 {
			n++
		}
	}
	return n
}

// fakeConn collects the frames written to a connection.
type fakeConn struct {
	mu     sync.Mutex
	frames [][]byte
	closed int

	flow sync.Mutex // the connection's handler flow: jobs run one at a time, as nbio runs them
}

func (f *fakeConn) WriteFrame(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed != 0 {
		return errors.New("closed")
	}
	f.frames = append(f.frames, append([]byte(nil), b...))
	return nil
}
func (f *fakeConn) Close(code int, _ string) { f.mu.Lock(); f.closed = code; f.mu.Unlock() }
func (f *fakeConn) RemoteAddr() string       { return "127.0.0.1:1" }

// Execute runs job on the connection's flow, as nbio's job list does; a
// closed connection refuses it.
func (f *fakeConn) Execute(job func()) bool {
	f.flow.Lock()
	defer f.flow.Unlock()
	f.mu.Lock()
	closed := f.closed != 0
	f.mu.Unlock()
	if closed {
		return false
	}
	job()
	return true
}

// payloads decodes every frame written so far (unframing the header).
func (f *fakeConn) payloads(t *testing.T) []map[string]any {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, b := range f.frames {
		p := b[2:]
		switch b[1] {
		case 126:
			p = b[4:]
		case 127:
			p = b[10:]
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("server sent invalid JSON %q: %v", p, err)
		}
		out = append(out, m)
	}
	f.frames = nil
	return out
}

type fixture struct {
	h     *Handler
	table *hub.Table
	store *memStore
}

// memGroups is a fixed membership for unit tests; the SQL store and cache are
// tested in groups/ and end to end.
type memGroups map[string][]string

func (m memGroups) Get(_ context.Context, g string) (*groups.Set, error) {
	return groups.NewSet(m[g]), nil
}

func newFixture(t *testing.T) *fixture {
	return newFixtureWith(t, Config{})
}

func newFixtureWith(t *testing.T, cfg Config) *fixture {
	table := hub.NewTable(100)
	st := newMemStore()
	cfg.Node = "n1"
	cfg.Limits = offline.Limits{AccountChars: 32, ContentChars: 100}
	if cfg.Broadcasters == nil {
		cfg.Broadcasters = []string{"*"}
	}
	h := New(cfg, Deps{
		Table: table, Queue: st, Backlog: st, Presence: presence.NewLocal("n1"),
		Groups: memGroups{"g1": {"alice", "bob", "carol"}},
		Log:    zerolog.New(zerolog.NewTestWriter(t)),
	})
	return &fixture{h: h, table: table, store: st}
}

// conn makes a connection; its argument only labels it in the test.
func (fx *fixture) conn(string) (*hub.Conn, *fakeConn) {
	fc := &fakeConn{}
	c := fx.table.NewConn(fc)
	fx.table.Add(c)
	return c, fc
}

// send hands c a frame and waits for what it started (an init's drain runs on
// a goroutine of its own) to finish.
func (fx *fixture) send(c *hub.Conn, frame string) {
	fx.h.Handle(c, true, []byte(frame))
	for !fx.h.drains.idle() || !fx.h.marker.idle() {
		time.Sleep(time.Millisecond)
	}
}

var errTest = errors.New("test: storage down")
