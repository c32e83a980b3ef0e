package presence

import (
	"context"
	"sync"
)

// Local is the in-process account map of the embedded default (one node, no
// Redis). It satisfies the same contract as Redis.
type Local struct {
	node string
	mu   sync.Mutex
	m    map[string]map[string]struct{} // account -> set of conn ids
}

// NewLocal returns an empty map for node.
func NewLocal(node string) *Local {
	return &Local{node: node, m: make(map[string]map[string]struct{})}
}

// Register records a connection of account.
func (l *Local) Register(account, conn string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.m[account]
	if s == nil {
		s = make(map[string]struct{}, 1)
		l.m[account] = s
	}
	s[conn] = struct{}{}
}

// Unregister removes exactly that connection's entry.
func (l *Local) Unregister(account, conn string, _ bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.m[account]
	delete(s, conn)
	if len(s) == 0 {
		delete(l.m, account)
	}
}

// Lookup lists account's connections.
func (l *Local) Lookup(_ context.Context, account string) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Entry, 0, len(l.m[account]))
	for c := range l.m[account] {
		out = append(out, Entry{Node: l.node, Conn: c})
	}
	return out, nil
}

// ClearNode drops every entry (there is only this node).
func (l *Local) ClearNode(context.Context) error {
	l.mu.Lock()
	l.m = make(map[string]map[string]struct{})
	l.mu.Unlock()
	return nil
}

// Sync is a no-op: Local writes at once.
func (l *Local) Sync(context.Context) error { return nil }

// Close is a no-op.
func (l *Local) Close(context.Context) error { return nil }
